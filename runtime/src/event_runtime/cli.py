"""The console script of a service: serve, worker, send, dlq list, dlq replay, settings, asyncapi, openapi."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from .__about__ import __version__ as runtime_version
from .api_docs import asyncapi_document, openapi_document
from .auth import signed_headers
from .cli_output import Progress, fields, table
from .ids import new_event_id
from .logs import configure_logging
from .redaction import configured_secrets, redact
from .service import Service
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from .application import EventService
    from .bus import EventBus
    from .bus.base import DeadLetter


def build_parser(spec: EventService) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=spec.name, description=spec.summary or None)
    parser.add_argument(
        "--version", action="version", version=f"{spec.name} {spec.version} (event-runtime {runtime_version})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="HTTP API and workers in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-workers", action="store_true", help="ingest only; run `worker` processes separately")

    commands.add_parser("worker", help="workers only: handle stored events, no HTTP")

    send = commands.add_parser("send", help="post one event to a running service (structured mode)")
    send.add_argument("--type", required=True, dest="event_type")
    send.add_argument("--source", default="/cli")
    send.add_argument("--id", dest="event_id", default=None, help="default: a new UUID")
    send.add_argument("--subject", default=None, help="ordering key")
    send.add_argument("--data", default="{}", help="JSON data")
    send.add_argument("--url", default="http://127.0.0.1:8000")
    send.add_argument("--token", default=None, help="bearer token (default: the first of SERVICE_AUTH_TOKENS)")
    send.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the handlers (Prefer: wait)")
    send.add_argument("--json", action="store_true", help="the answer as one JSON object (default: a table)")

    dlq = commands.add_parser("dlq", help="the dead-letter store").add_subparsers(dest="dlq_command", required=True)
    listing = dlq.add_parser("list", help="list dead-lettered deliveries")
    listing.add_argument("--json", action="store_true", help="one JSON object a line (default: a table)")
    replay = dlq.add_parser("replay", help="make dead letters due again")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", dest="event_ids", action="append", help="event id (repeatable)")
    which.add_argument("--all", action="store_true")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.add_argument(
        "--progress", action="store_true", help="show progress on stderr (default: only when stderr is a terminal)"
    )
    replay.add_argument(
        "--batch", type=_positive, default=REPLAY_BATCH, help=f"event ids per store call (default {REPLAY_BATCH})"
    )

    commands.add_parser("settings", help="every SERVICE_* variable with its default, as a Markdown table")
    for name, what in (("asyncapi", "AsyncAPI 3.0 document of the events"), ("openapi", "OpenAPI 3.1 of the HTTP API")):
        document = commands.add_parser(name, help=f"print the {what} (as served at /{name}.json)")
        document.add_argument("--output", "-o", default=None, help="write it to this file instead")
    return parser


DLQ_LIMIT = 100_000  # dead letters listed (and replayed by id) at most; `replay --all` gets the rest in one call
REPLAY_BATCH = 500  # dead letters' event ids per replay call: each is one store transaction (or one Redis script)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def run(spec: EventService, argv: Sequence[str] | None = None) -> int:
    """Run one command of `spec`'s console script; returns the exit code."""
    args = build_parser(spec).parse_args(argv)
    if args.command == "settings":
        return _print_settings(spec)
    try:
        settings = spec.settings()
    except SettingsError as error:
        print(f"{spec.name}: invalid settings: {redact(str(error))}", file=sys.stderr)
        return 2
    secrets = configured_secrets(settings)
    configure_logging(settings.log_level, secrets)
    if args.command in ("asyncapi", "openapi"):
        return _write_document(spec, args, settings)
    if args.command == "send":
        # what send prints is its answer: httpx's own line per request would only repeat it
        logging.getLogger("httpx").setLevel(logging.WARNING)
        return _send(spec.name, args, settings)
    try:
        service = spec.build(settings)
    except ValueError as error:  # a bus the installed runtime cannot open (a missing extra)
        print(f"{spec.name}: {redact(str(error), secrets)}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from .server import serve

        serve(service, args.host, args.port, run_workers=not args.no_workers)
        return 0
    if args.command == "worker":
        from .server import run_workers

        run_workers(service)
        return 0
    return asyncio.run(_dlq(spec.name, args, service, secrets))


def _print_settings(spec: EventService) -> int:
    print("| variable | default | |")
    print("|---|---|---|")
    for row in spec.settings_reference():
        default = f"`{row.default}`" if row.default else "(none)"
        print(f"| `{row.variable}` | {default} | {row.description} |")
    return 0


def _write_document(spec: EventService, args: argparse.Namespace, settings: Settings) -> int:
    """The document the service serves, from the same registry and settings; for asyncapi, exit 1 when a handler
    declares a follow-up type nobody handles (its publish would fail for good), the document written all the same."""
    build = asyncapi_document if args.command == "asyncapi" else openapi_document
    text = json.dumps(build(spec.registry, settings, spec.version), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as output:
            output.write(text)
    else:
        sys.stdout.write(text)
    unhandled = spec.registry.unhandled_follow_ups() if args.command == "asyncapi" else []
    for handler, event_type in unhandled:
        print(
            f"{spec.name} asyncapi: {handler} declares it publishes {event_type!r}, which no handler subscribes to",
            file=sys.stderr,
        )
    return 1 if unhandled else 0


def _send(prog: str, args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = json.loads(args.data)
    except json.JSONDecodeError as error:
        print(f"{prog} send: --data is not JSON: {error}", file=sys.stderr)
        return 2
    event = {
        "specversion": "1.0",
        "id": args.event_id or new_event_id(),
        "source": args.source,
        "type": args.event_type,
        "datacontenttype": "application/json",
        "data": data,
    }
    if args.subject:
        event["subject"] = args.subject
    headers = {"content-type": "application/cloudevents+json"}
    token = args.token or (settings.tokens[0] if settings.tokens else None)
    if token:
        headers["authorization"] = f"Bearer {token}"
    if args.wait:
        headers["prefer"] = f"wait={args.wait}"
    body = json.dumps(event).encode()
    signing_keys = [key.strip() for key in settings.signing_keys.split(",") if key.strip()]
    if signing_keys:  # a service that checks signatures gets signed events: the first key signs
        headers.update(signed_headers(signing_keys[0], body, message_id=str(event["id"])))
    try:
        response = httpx.post(f"{args.url.rstrip('/')}/events", content=body, headers=headers, timeout=10 + args.wait)
    except httpx.HTTPError as error:
        print(f"{prog} send: {redact(f'{args.url} did not answer: {error}')}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:  # not the service (a proxy's page): shown as text
        answer = response.text
    if args.json:
        print(json.dumps({"status": response.status_code, "id": event["id"], "body": answer}))
    else:
        print(_answer_table(response.status_code, str(event["id"]), answer))
    return 0 if response.status_code < 400 else 1


def _answer_table(status: int, event_id: str, answer: object) -> str:
    """The answer's fields as `name  value` lines, then a table of the handlers' results when it has them."""
    record: dict[str, object] = {"status": status, "id": event_id}
    results: list[dict[str, object]] = []
    if isinstance(answer, dict):
        results = answer.get("results") or []
        record.update((name, value) for name, value in answer.items() if name != "results")
    else:
        record["body"] = answer
    text = fields(record)
    if results:
        rows = [{**row, "result / error": row.get("error") or row.get("result")} for row in results]
        text += "\n\n" + table(rows, ["handler", "status", "result / error"])
    return text


async def _dlq(prog: str, args: argparse.Namespace, service: Service, secrets: Sequence[str]) -> int:
    bus = service.bus
    await bus.open()
    try:
        letters = await bus.dead_letters(limit=DLQ_LIMIT)
        if args.dlq_command == "list":
            rows = [
                {
                    "id": letter.event_id,
                    "source": letter.source,
                    "type": letter.event_type,
                    "handler": letter.handler,
                    "attempts": letter.attempts,
                    # a handler's error may quote a URL with its password, or a configured secret
                    "last_error": redact(letter.last_error, secrets),
                }
                for letter in letters
            ]
            if args.json:
                for row in rows:
                    print(json.dumps(row))
                return 0
            if rows:
                print(table(rows, list(rows[0])))
            print(f"{len(letters)} dead-lettered deliveries", file=sys.stderr)
            return 0
        wanted = None if args.all else set(args.event_ids)
        chosen = [letter for letter in letters if wanted is None or letter.event_id in wanted]
        missing = sorted((wanted or set()) - {letter.event_id for letter in chosen})
        for event_id in missing:
            print(f"{prog} dlq replay: no dead letter with id {event_id!r}", file=sys.stderr)
        if args.dry_run:
            for letter in chosen:
                print(f"would replay {letter.event_id}\t{letter.handler}")
            print(f"{len(chosen)} deliveries would be replayed", file=sys.stderr)
            return 1 if missing else 0
        replayed = await _replay(bus, chosen, args)
        print(f"replayed {replayed} deliveries", file=sys.stderr)
        return 1 if missing else 0
    finally:
        await bus.close()


async def _replay(bus: EventBus, chosen: Sequence[DeadLetter], args: argparse.Namespace) -> int:
    """Replay the chosen dead letters `args.batch` event ids at a time, with progress on stderr on a terminal or
    with --progress. Only the letters listed at the start are replayed (`--all` too), so the count is of those."""
    event_ids = list(dict.fromkeys(letter.event_id for letter in chosen))  # an event's letters go in one call
    progress = Progress("replayed", len(chosen), enabled=args.progress or sys.stderr.isatty())
    replayed = 0
    try:
        for start in range(0, len(event_ids), args.batch):
            count = await bus.replay(event_ids[start : start + args.batch])
            replayed += count
            progress.advance(count)
        if args.all and len(chosen) >= DLQ_LIMIT:  # more than were listed: the rest in one call
            replayed += await bus.replay(None)
    finally:
        progress.finish()
    return replayed
