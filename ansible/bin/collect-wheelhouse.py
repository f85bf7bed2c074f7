"""Collects a release's wheel and every dependency, as binary wheels for the hosts, into one folder.

`pip download --python-version` picks wheels for the hosts' Python, but pip evaluates environment markers with the
Python running it: a dependency behind `python_full_version < "3.11.3"` (redis needs async-timeout there) is left
out when the controller runs 3.11.7 and the hosts 3.11.2. So after pip, this walks the requirements of the wheels
it got, evaluates their markers for the hosts' version, and downloads what is missing, until nothing is. The hosts'
own `pip install --no-index` still checks the whole set. Writes `.complete` last, so a cut-off run is redone.

Usage: collect-wheelhouse.py WHEEL DEST PYTHON_FULL_VERSION PLATFORM... (run by roles/service/tasks/artifacts.yml)
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

ROUNDS = 5  # each round adds the dependencies the previous one's markers hid; real trees need one or two


def main(wheel: str, dest: str, python_full_version: str, *platforms: str) -> int:
    wheelhouse = Path(dest)
    download = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={python_full_version}",
        f"--dest={wheelhouse}",
        *(f"--platform={platform}" for platform in platforms),
    ]
    subprocess.run([*download, wheel], check=True)  # noqa: S603  (pip, with the role's own arguments)
    target = default_environment() | {
        "python_full_version": python_full_version,
        "python_version": ".".join(python_full_version.split(".")[:2]),
        "implementation_version": python_full_version,
    }
    root = parse_wheel_filename(Path(wheel).name)[0]
    for _ in range(ROUNDS):
        missing = missing_requirements(wheelhouse, root, target)
        if not missing:
            (wheelhouse / ".complete").write_text("")
            return 0
        print(f"collect-wheelhouse: markers for Python {python_full_version} also need: {', '.join(missing)}")
        subprocess.run([*download, *missing], check=True)  # noqa: S603  (requirements read from the wheels)
    print(f"collect-wheelhouse: still missing after {ROUNDS} rounds: {', '.join(missing)}", file=sys.stderr)
    return 1


def missing_requirements(wheelhouse: Path, root: str, target: dict[str, str]) -> list[str]:
    """Requirements (without markers) that apply on the hosts but have no wheel in the folder."""
    wheels = {parse_wheel_filename(path.name)[0]: path for path in wheelhouse.glob("*.whl")}
    seen: set[tuple[str, frozenset[str]]] = set()
    queue: list[tuple[str, frozenset[str]]] = [(canonicalize_name(root), frozenset())]
    missing: set[str] = set()
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for line in requires_dist(wheels[name]):
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate(target | {"extra": e}) for e in {"", *extras}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency in wheels:
                queue.append((dependency, frozenset(requirement.extras)))
            else:
                requirement.marker = None
                missing.add(str(requirement))
    return sorted(missing)


def requires_dist(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    headers = text.split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in headers.splitlines() if line.startswith("Requires-Dist:")]


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
