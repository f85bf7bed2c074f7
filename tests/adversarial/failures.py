"""Replayable fuzz failures: the exact bytes sent on the connection (`<name>.http`) and what was expected and seen
(`<name>.json`), under .cache/fuzz-failures/.

Replay one against a running service: `python tests/adversarial/failures.py FILE.http --port PORT`; or let pytest
start a bake and replay every saved file: `pytest -m slow tests/test_adversarial_fuzz.py -k replay`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: make the tests' helpers importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support import CACHE_DIR

from adversarial.fuzz_cases import Case
from adversarial.raw_http import Exchange, one_exchange
from adversarial.verdicts import judge

FAILURES_DIR = CACHE_DIR / "fuzz-failures"


def clear() -> None:
    """Forget the last run's failures: the folder holds one run's."""
    shutil.rmtree(FAILURES_DIR, ignore_errors=True)


def save(case: Case, result: Exchange, problems: list[tuple[str, str]]) -> Path:
    FAILURES_DIR.mkdir(parents=True, exist_ok=True)
    name = f"{problems[0][0]}-{hashlib.sha256(case.payload).hexdigest()[:12]}"
    path = FAILURES_DIR / f"{name}.http"
    path.write_bytes(case.payload)
    meta = {field.name: getattr(case, field.name) for field in dataclasses.fields(case) if field.name != "payload"}
    meta["problems"] = problems
    meta["seen"] = result.describe()
    (FAILURES_DIR / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def saved() -> list[Path]:
    return sorted(FAILURES_DIR.glob("*.http")) if FAILURES_DIR.is_dir() else []


def load(path: Path) -> Case:
    meta = json.loads(path.with_suffix(".json").read_text())
    fields = {field.name for field in dataclasses.fields(Case)}
    values = {name: value for name, value in meta.items() if name in fields}
    values["allowed_5xx"] = tuple(values.get("allowed_5xx", ()))
    return Case(payload=path.read_bytes(), **values)


def replay(path: Path, port: int, *, read_timeout: float, deadline: float) -> tuple[Exchange, list[tuple[str, str]]]:
    """Send a saved case on a new connection; what came back and the violations in it."""
    case = load(path)
    result = one_exchange(port, case.payload, answers=case.answers, timeout=deadline, half_close=case.half_close)
    return result, judge(case, result, read_timeout=read_timeout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--port", type=int, required=True, help="the service on 127.0.0.1")
    parser.add_argument("--read-timeout", type=float, default=1.0, help="the service's header/body read timeout")
    arguments = parser.parse_args()
    failed = 0
    for path in arguments.files:
        result, problems = replay(path, arguments.port, read_timeout=arguments.read_timeout,
                                  deadline=arguments.read_timeout + 5)
        failed += bool(problems)
        print(f"{path.name}: {result.describe()} {'FAIL ' + str(problems) if problems else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
