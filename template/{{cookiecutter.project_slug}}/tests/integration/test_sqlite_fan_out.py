"""How the SQLite bus turns stored events into deliveries (the fan-out)."""

from pathlib import Path

from {{ cookiecutter.package_name }}.runtime.bus.sqlite import SQLiteBus


def test_the_store_sorts_in_memory(tmp_path: Path) -> None:
    # the fan-out's window function and ORDER BY sort in temporary b-trees; in a file they cost ~100 us per claim
    connection = SQLiteBus(str(tmp_path / "events.db"))._connect()
    try:
        (temp_store,) = connection.execute("PRAGMA temp_store").fetchone()
    finally:
        connection.close()
    assert temp_store == 2  # MEMORY
