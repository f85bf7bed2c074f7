"""Build the wheel, optionally stamped with a release version (`make build` passes the Makefile's VERSION).

The source tree is never edited: the build runs on a copy whose pyproject.toml carries the version, so a release
built from commit X is `<version in pyproject>+g<X>` everywhere: wheel, /readyz, Ansible's release directory.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
# PEP 440, as pip and the wheel file name accept it
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9]+(\.[a-z0-9]+)*)?$")
VERSION_LINE = re.compile(r'^version = "[^"]*"$', re.M)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", default="", help="release version (PEP 440); default: pyproject's")
    parser.add_argument("--outdir", default="dist")
    args = parser.parse_args(argv)
    if args.version and not VERSION_PATTERN.match(args.version):
        print(f"build_wheel: --version {args.version!r} is not a PEP 440 version", file=sys.stderr)
        return 2
    outdir = (PROJECT / args.outdir).resolve()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(PROJECT / name, source / name)
        shutil.copytree(PROJECT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        if args.version:
            pyproject = source / "pyproject.toml"
            pyproject.write_text(VERSION_LINE.sub(f'version = "{args.version}"', pyproject.read_text(), count=1))
        command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(outdir), str(source)]
        return subprocess.run(command, check=False).returncode  # noqa: S603 - our interpreter, our arguments


if __name__ == "__main__":
    sys.exit(main())
