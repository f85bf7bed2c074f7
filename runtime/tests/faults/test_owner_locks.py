"""The proof a claim owner is dead: a lock file only its live owner holds (bus/owner_locks.py)."""

from __future__ import annotations

from pathlib import Path

from event_runtime.bus.owner_locks import OwnerLocks


def test_only_an_owner_whose_lock_is_free_is_dead_and_its_file_goes_once_released(tmp_path: Path) -> None:
    directory = tmp_path / "events.db.owners"
    alive, closed_unreleased, looking = (OwnerLocks(directory, name) for name in ("alive", "unreleased", "looker"))
    for owner in (alive, closed_unreleased, looking):
        owner.hold()
    closed_unreleased.drop(remove=False)  # its claims could not be released at its close

    found = list(looking.dead_owners())

    assert [owner for owner, _ in found] == ["unreleased"]
    for _, done in found:
        done()
    assert sorted(path.name for path in directory.iterdir()) == ["alive.lock", "looker.lock"]
    alive.drop()
    looking.drop()
    assert list(directory.iterdir()) == []


def test_an_owner_that_died_before_naming_its_file_leaves_nothing_behind(tmp_path: Path) -> None:
    directory = tmp_path / "events.db.owners"
    directory.mkdir()
    (directory / "half-made.tmp").write_text("")
    looking = OwnerLocks(directory, "looker")
    looking.hold()
    assert list(looking.dead_owners()) == []
    assert sorted(path.name for path in directory.iterdir()) == ["looker.lock"]
    looking.drop()
