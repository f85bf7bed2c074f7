"""A fuzzer of `POST /events` over raw sockets, against one default bake (SQLite) started with its CLI under the
deployed unit's memory limit: structured, binary, batch and garbage requests with bad encodings, deep nesting,
sizes around the limits, wrong framing and hostile headers (tests/adversarial/fuzz_cases.py).

Asserted over the whole run: no 5xx (501/505 where the RFC asks for them), every error a JSON object with an
`error`, no connection dropped without an answer, no hang past the per-request deadline, resident memory bounded,
the process alive and never OOM-killed, and the store holding exactly what the 2xx answers accepted (every id
they accepted among them). Failures are saved as replayable request files (tests/adversarial/failures.py).
Run it alone, with its figures: `pytest -s -m slow tests/test_adversarial_fuzz.py`.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from adversarial import failures
from adversarial.bakes import BODY_TIMEOUT, HEADER_TIMEOUT, LimitedService, limited_service
from adversarial.fuzz_cases import Case, recipes, render
from adversarial.memory_limit import RssSampler
from adversarial.raw_http import OPEN, Exchange, connect, exchange, one_exchange
from adversarial.verdicts import NOT_JSON, judge
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

CASES = int(os.environ.get("ADVERSARIAL_FUZZ_CASES", "10000"))
# recipes per hypothesis example: hypothesis' own cost per example is larger than a recipe's (measured here: 25 per
# example draw 2.8 ms a case, one per example 8.5 ms)
CASES_PER_EXAMPLE = 25
KEEP_ALIVE_CONNECTIONS = 4  # well-framed requests, one after another on reused connections
FRESH_CONNECTIONS = 32  # everything else, a new connection each: many of them wait for the server's read timeout
READ_TIMEOUT = max(HEADER_TIMEOUT, BODY_TIMEOUT)
DEADLINE = READ_TIMEOUT + 5.0  # past it with no answer and no close, a request hangs
REUSE_IDLE_SECONDS = 1.0  # a connection idle longer is not reused: the server may close it at its keep-alive timeout
RSS_BOUND = 256 << 20  # half the unit's MemoryMax: the largest request is 4 MiB, about 36 are in flight
SAVED_PER_CATEGORY = 10
MIB = 1 << 20


@dataclass
class Tally:
    """Everything the run saw, added to from the sender threads under `lock`."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    cases: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    endings: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    saved: dict[str, list[str]] = field(default_factory=dict)
    accepted: int = 0
    must_be_stored: set[str] = field(default_factory=set)
    slowest: float = 0.0

    def record(self, case: Case, result: Exchange) -> None:
        problems = judge(case, result, read_timeout=READ_TIMEOUT)
        accepted = 0
        for response in result.responses:
            if 200 <= response.status < 300:
                try:
                    accepted += int(json.loads(response.body)["accepted"])
                except (ValueError, KeyError, TypeError):
                    problems.append((NOT_JSON, f"{response.status} {response.body[:120]!r}"))
        with self.lock:
            self.cases += 1
            self.kinds[case.kind.split()[0]] += 1
            self.statuses.update(response.status for response in result.responses)
            self.endings[result.ending] += 1
            self.slowest = max(self.slowest, result.elapsed)
            self.accepted += accepted
            if any(200 <= response.status < 300 for response in result.responses):
                self.must_be_stored.update(case.ids)
            for category, _ in problems[:1]:
                self.violations[category] += 1
                saved = self.saved.setdefault(category, [])
                if len(saved) < SAVED_PER_CATEGORY:
                    saved.append(f"{failures.save(case, result, problems).name} ({case.kind}: {problems[0][1]})")


def _keep_alive_sender(port: int, cases: queue.Queue[Case | None], tally: Tally) -> None:
    sock, last_used = None, 0.0
    while (case := cases.get()) is not None:
        if sock is not None and time.monotonic() - last_used > REUSE_IDLE_SECONDS:
            sock.close()
            sock = None
        if sock is None:
            try:
                sock = connect(port)
            except OSError as error:
                tally.record(case, Exchange(ending="reset", send_error=f"connect: {error}"))
                continue
        result = exchange(sock, case.payload, answers=1, deadline=time.monotonic() + DEADLINE)
        last_used = time.monotonic()
        tally.record(case, result)
        # reused only after a plain success that was read whole: an error answer may close, or leave a body unread
        reusable = (result.ending == OPEN and result.responses and result.sent == len(case.payload)
                    and 200 <= result.responses[-1].status < 300 and not result.responses[-1].closes)
        if not reusable:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()


def _fresh_sender(port: int, cases: queue.Queue[Case | None], tally: Tally) -> None:
    while (case := cases.get()) is not None:
        result = one_exchange(port, case.payload, answers=case.answers, timeout=DEADLINE, half_close=case.half_close)
        tally.record(case, result)


def fuzz(port: int, cases: int) -> tuple[Tally, float]:
    """Draw `cases` recipes with hypothesis and send them as they are drawn; the tally and the drawing's seconds."""
    tally = Tally()
    keep_alive: queue.Queue[Case | None] = queue.Queue(maxsize=64)
    fresh: queue.Queue[Case | None] = queue.Queue(maxsize=256)
    senders = [threading.Thread(target=_keep_alive_sender, args=(port, keep_alive, tally), daemon=True)
               for _ in range(KEEP_ALIVE_CONNECTIONS)]
    senders += [threading.Thread(target=_fresh_sender, args=(port, fresh, tally), daemon=True)
                for _ in range(FRESH_CONNECTIONS)]
    for sender in senders:
        sender.start()
    numbers = itertools.count()
    started = time.monotonic()

    # only the generate phase: a failure is saved as its bytes, and shrinking against a live server would replay
    # thousands of requests; derandomize stays off, so every run draws new cases
    @settings(max_examples=-(-cases // CASES_PER_EXAMPLE), database=None, derandomize=False, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(recipes(), min_size=CASES_PER_EXAMPLE, max_size=CASES_PER_EXAMPLE))
    def draw(drawn):  # type: ignore[no-untyped-def]
        for recipe in drawn:
            case = render(recipe, next(numbers))
            (keep_alive if case.keep_alive else fresh).put(case)

    draw()
    drawing = time.monotonic() - started
    for _ in range(KEEP_ALIVE_CONNECTIONS):
        keep_alive.put(None)
    for _ in range(FRESH_CONNECTIONS):
        fresh.put(None)
    for sender in senders:
        sender.join(DEADLINE * 4)
    return tally, drawing


# the last run's failures, replayed before the fuzz run below clears them and saves its own
SAVED = failures.saved()


@pytest.fixture(scope="module")
def replay_service(baked_python: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with limited_service(baked_python, tmp_path_factory.mktemp("replay")) as service:
        yield service


@pytest.mark.parametrize(
    "path",
    SAVED or [pytest.param(None, marks=pytest.mark.skip(reason="no saved fuzz failures in .cache/fuzz-failures/"))],
    ids=[path.name for path in SAVED] or ["none-saved"],
)
def test_a_saved_fuzz_failure_replays_without_a_violation(path: Path, replay_service: LimitedService) -> None:
    if not path.exists():
        pytest.skip("cleared by a later fuzz run")
    result, problems = failures.replay(path, replay_service.port, read_timeout=READ_TIMEOUT, deadline=DEADLINE)
    assert not problems, f"{path}: {result.describe()}: {problems}"


def test_fuzzed_requests_get_no_5xx_no_drop_no_hang_and_every_accepted_event_is_stored(
    baked_python: Path, tmp_path: Path
) -> None:
    failures.clear()
    with limited_service(baked_python, tmp_path) as service:
        started = time.monotonic()
        with RssSampler(service.pid) as rss:
            tally, drawing = fuzz(service.port, CASES)
        seconds = time.monotonic() - started
        alive = service.alive()
        oom_kills = service.limit.oom_kills()
        peak = service.limit.peak_bytes()
        service.process.stop()  # SIGTERM: the store is complete once it exits
        stored = service.stored_ids()

    print(_figures(tally, service, rss, seconds, drawing, alive, oom_kills, peak, len(stored)))
    problems = [f"{category}: {count} cases; saved in {failures.FAILURES_DIR}: " + "; ".join(tally.saved[category])
                for category, count in sorted(tally.violations.items())]
    if tally.cases < CASES:
        problems.append(f"only {tally.cases} of {CASES} cases were sent")
    if not alive or oom_kills:
        log = service.process.log()[-3000:]
        problems.append(f"the service died: alive={alive}, OOM kills={oom_kills}; log:\n{log}")
    if rss.peak > RSS_BOUND:
        problems.append(f"resident memory reached {rss.peak / MIB:.0f} MiB, over {RSS_BOUND / MIB:.0f} MiB")
    if len(stored) != tally.accepted:
        problems.append(f"the store holds {len(stored)} events, the 2xx answers accepted {tally.accepted}")
    missing = tally.must_be_stored - set(stored)
    if missing:
        problems.append(f"{len(missing)} accepted events are not in the store, e.g. {sorted(missing)[:5]}")
    assert not problems, "\n".join(problems)


def _figures(tally: Tally, service: LimitedService, rss: RssSampler, seconds: float, drawing: float, alive: bool,
             oom_kills: int, peak: int | None, rows: int) -> str:
    def counts(counter: Counter) -> str:  # type: ignore[type-arg]
        return ", ".join(f"{key} x{value}" for key, value in sorted(counter.items(), key=lambda item: str(item[0])))

    cgroup_peak = f", cgroup peak {peak / MIB:.0f} MiB" if peak else ""
    return "\n".join([
        "",
        f"fuzz: {tally.cases} cases in {seconds:.1f} s (drawing {drawing:.1f} s) over {KEEP_ALIVE_CONNECTIONS} "
        f"keep-alive and {FRESH_CONNECTIONS} fresh connections; limit: {service.limit.how} "
        f"{service.limit.limit_bytes / MIB:.0f} MiB",
        f"  kinds: {counts(tally.kinds)}",
        f"  statuses: {counts(tally.statuses)}",
        f"  endings: {counts(tally.endings)}; slowest case {tally.slowest:.1f} s",
        f"  RSS: start {rss.first / MIB:.0f} MiB, max {rss.peak / MIB:.0f} MiB ({rss.samples} samples){cgroup_peak}; "
        f"OOM kills {oom_kills}; alive at the end: {alive}",
        f"  store: {rows} events; accepted by 2xx answers: {tally.accepted}",
        f"  violations: {counts(tally.violations) or 'none'}",
    ])
