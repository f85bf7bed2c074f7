"""What a correct server may do with a hostile request, judged from what came back on the connection.

Allowed: an answer below 500 (501 for a transfer coding it does not implement and 505 for an HTTP version, as the
RFC asks), every error answer a JSON object with a string `error`; after an answer, closing the connection (an
error answer to bad framing cannot be followed by anything else). A request the server could only find incomplete
by waiting may instead be closed, without an answer, once the server's read timeout has passed.

Not allowed: a 5xx; an error answer that is not JSON; a connection closed or reset without an answer to a request
it had (or closed before its read timeout could have fired); a pipelined request left unanswered after a success
that did not announce the close; no answer and no close within the deadline (a hang).
"""

from __future__ import annotations

import json

from adversarial.fuzz_cases import Case
from adversarial.raw_http import CLOSED, RESET, TIMEOUT, Exchange, Response

SERVER_ERROR, NOT_JSON, DROPPED, HANG = "server_error", "not_json", "dropped", "hang"


def is_json_error(response: Response) -> bool:
    try:
        body = json.loads(response.body)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"])


def judge(case: Case, result: Exchange, *, read_timeout: float) -> list[tuple[str, str]]:
    """The violations in `result` as (category, detail); empty when the server behaved."""
    problems: list[tuple[str, str]] = []
    for response in result.responses:
        if response.status >= 500 and response.status not in case.allowed_5xx:
            problems.append((SERVER_ERROR, f"{response.status} {response.body[:120]!r}"))
        elif response.status >= 400 and not is_json_error(response):
            problems.append((NOT_JSON, f"{response.status} {response.body[:120]!r}"))
    if not result.responses:
        if result.ending == TIMEOUT:
            problems.append((HANG, f"no answer and no close in {result.elapsed:.1f}s"))
        elif result.ending == RESET:
            problems.append((DROPPED, f"reset without an answer after {result.elapsed:.2f}s"))
        elif result.ending == CLOSED and not (case.may_wait and result.elapsed >= 0.8 * read_timeout):
            problems.append((DROPPED, f"closed without an answer after {result.elapsed:.2f}s"))
    elif case.answers is not None and len(result.responses) < case.answers:
        last = result.responses[-1]
        if result.ending == TIMEOUT:
            problems.append((HANG, f"{len(result.responses)} of {case.answers} pipelined requests answered"))
        elif last.status < 400 and not last.closes:
            problems.append((DROPPED, f"{len(result.responses)} of {case.answers} pipelined requests answered, then "
                                      f"{result.ending} without announcing it"))
    return problems
