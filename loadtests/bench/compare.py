#!/usr/bin/env python3
"""Two versions of the baked service side by side: maximum rate and half-rate latency, rounds alternating.

For comparing a change against the code before it on a shared machine, where one full bench run per version
would put minutes of drift between them. Each round starts a fresh server of each version, one after the other;
the order flips every round, so neither version always runs first. The half-rate rounds hold both versions to the
same rate, half of the "before" version's median maximum, so their p99s are taken under the same load.
Servers, wrk and pinning are run_bench.py's own (docs/performance.md, "Compare two versions").

Each side runs `python -m <package> serve` in its bake with its own python, whose installed event-runtime it runs:
two venvs, one runtime version each, compare two runtime versions. A bake from before event-runtime (with its own
copy in src/<package>/runtime/) runs that copy; its python needs only the dependencies.
"""

# A benchmark driver: it starts the servers it compares by design.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import run_bench
from run_bench import VARIANTS, Measurement, Variant, measure_at_rate, run_wrk, server_commands, started

SIDES = ("before", "after")


@dataclass
class Comparison:
    """One variant's rounds for both versions: maximum rate, and latency at one fixed rate."""

    variant: Variant
    maximum: dict[str, list[Measurement]] = field(default_factory=lambda: {side: [] for side in SIDES})
    half_rate: dict[str, list[Measurement]] = field(default_factory=lambda: {side: [] for side in SIDES})

    @property
    def half_rate_target(self) -> float:
        """Both versions are held to half the before version's median maximum."""
        return median_rate(self.maximum["before"], self.variant) / 2


def order_of_round(round_number: int) -> tuple[str, ...]:
    return SIDES if round_number % 2 else SIDES[::-1]


@dataclass
class Source:
    """What one side runs: the bake's package, and the runtime under it."""

    package: Path
    runtime: Path | None  # None: that python has no event_runtime, and the bake carries no runtime of its own
    runtime_version: str


# run by each side's python, with its bake on PYTHONPATH; argv[1] is the package
_WHERE_FROM = """
import importlib, importlib.util, json, sys
package = importlib.import_module(sys.argv[1])
bundled = importlib.util.find_spec(sys.argv[1] + ".runtime")  # a bake from before event-runtime: its own copy
runtime = bundled or importlib.util.find_spec("event_runtime")
version = "" if bundled or not runtime else importlib.import_module("event_runtime.__about__").__version__
print(json.dumps({"package": package.__file__, "runtime": runtime and runtime.origin, "runtime_version": version}))
"""


def imported_from(commands, package: str) -> Source:
    """Where the service command's python imports the package and the runtime from. Should that python find the
    package before the bake's PYTHONPATH (an install of another bake, a .pth file), both sides would run the same
    code."""
    command, _, env, cwd = commands["service"]
    found = json.loads(
        subprocess.run(
            [command[0], "-c", _WHERE_FROM, package], env=env, cwd=cwd, capture_output=True, text=True, check=True
        ).stdout
    )
    return Source(
        Path(found["package"]).resolve(),
        Path(found["runtime"]).resolve() if found["runtime"] else None,
        found["runtime_version"],
    )


def described(source: Source) -> str:
    if source.runtime is None or source.runtime.is_relative_to(source.package.parent):
        return f"{source.package.parent}, with its own runtime"
    return f"{source.package.parent}, event-runtime {source.runtime_version} from {source.runtime.parent}"


def compare(args, commands: dict[str, dict], workdir: Path) -> dict[str, Comparison]:
    comparisons = {name: Comparison(VARIANTS[name]) for name in args.variants}
    for round_number in range(1, args.rounds + 1):
        for name, comparison in comparisons.items():
            variant = comparison.variant
            for side in order_of_round(round_number):
                with started(variant.server, commands[side], workdir) as (url, _process):
                    if args.warmup > 0:
                        run_wrk(url, variant, args.warmup, args.connections)
                    measurement = run_wrk(url, variant, args.seconds, args.connections)
                comparison.maximum[side].append(measurement)
                report(f"maximum, round {round_number}", name, side, variant, measurement)
    if not args.half_rate:
        return comparisons
    for name, comparison in comparisons.items():
        variant = comparison.variant
        for round_number in range(1, args.rounds + 1):
            for side in order_of_round(round_number):
                with started(variant.server, commands[side], workdir) as (url, _process):
                    measurement = measure_at_rate(
                        url, variant, comparison.half_rate_target, args.seconds, args.connections
                    )
                comparison.half_rate[side].append(measurement)
                report(f"half rate, round {round_number}", name, side, variant, measurement)
    return comparisons


def report(stage: str, name: str, side: str, variant: Variant, measurement: Measurement) -> None:
    print(
        f"{stage} {name} {side}: {measurement.events_per_second(variant):,.0f} events/s, "
        f"p50 {measurement.p50_ms:.1f} ms, p99 {measurement.p99_ms:.1f} ms, errors {measurement.errors}",
        file=sys.stderr,
        flush=True,
    )


def median_rate(rounds: list[Measurement], variant: Variant) -> float:
    return statistics.median(m.events_per_second(variant) for m in rounds)


def render(comparisons: dict[str, Comparison], args, sources: dict[str, Source], machine: str) -> str:
    lines = [
        f"Machine: {machine}.",
        f"Before: {described(sources['before'])}. After: {described(sources['after'])}.",
        (
            f"{args.rounds} rounds, the order of the two versions flipping each round; {args.warmup:g} s warm-up, "
            f"{args.seconds:g} s measured, wrk -c{args.connections} for the maximum; a fresh server and store each run."
        ),
        "",
        "| variant | figure | before, by round | after, by round | before (median) | after (median) | after/before |",
        "|---|---|---|---|---:|---:|---:|",
    ]

    def row(name: str, figure: str, before: list[float], after: list[float], digits: int) -> str:
        b, a = statistics.median(before), statistics.median(after)
        ratio = f"{a / b:.2f}" if b else "n/a"
        listed = {
            side: ", ".join(f"{value:,.{digits}f}" for value in values)
            for side, values in (("before", before), ("after", after))
        }
        return (
            f"| {name} | {figure} | {listed['before']} | {listed['after']} | {b:,.{digits}f} | {a:,.{digits}f} | "
            f"{ratio} |"
        )

    for name, comparison in comparisons.items():
        variant = comparison.variant
        rates = {side: [m.events_per_second(variant) for m in comparison.maximum[side]] for side in SIDES}
        lines.append(row(name, "maximum events/s", rates["before"], rates["after"], 0))
        if comparison.half_rate["before"]:
            target = f"p99 ms at {comparison.half_rate_target:,.0f} events/s"
            p99s = {side: [m.p99_ms for m in comparison.half_rate[side]] for side in SIDES}
            held = {side: [m.events_per_second(variant) for m in comparison.half_rate[side]] for side in SIDES}
            lines.append(row(name, target, p99s["before"], p99s["after"], 1))
            lines.append(row(name, "events/s held at that rate", held["before"], held["after"], 0))
    errors = {
        f"{name} {side}": sum(m.errors for m in comparison.maximum[side] + comparison.half_rate[side])
        for name, comparison in comparisons.items()
        for side in SIDES
    }
    lines += ["", "Errors (non-2xx or socket): " + ", ".join(f"{key} {count}" for key, count in errors.items()) + "."]
    return "\n".join(lines)


def as_json(comparisons: dict[str, Comparison], sources: dict[str, Source], pythons: dict[str, str]) -> dict:
    return {
        "sources": {side: str(source.package) for side, source in sources.items()},
        "runtimes": {
            side: {"path": str(source.runtime), "version": source.runtime_version} for side, source in sources.items()
        },
        "pythons": pythons,
        "variants": {
            name: {
                "half_rate_target": comparison.half_rate_target,
                **{
                    side: {
                        "maximum": [m.__dict__ for m in comparison.maximum[side]],
                        "half_rate": [m.__dict__ for m in comparison.half_rate[side]],
                    }
                    for side in SIDES
                },
            }
            for name, comparison in comparisons.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the baked project to compare against")
    parser.add_argument("--after", type=Path, required=True, help="the baked project with the change")
    service_variants = [name for name, variant in VARIANTS.items() if variant.server in run_bench.SERVICE_SERVERS]
    parser.add_argument(
        "--variants", default="ingest-batch,service-single", help=f"comma-separated, from {', '.join(service_variants)}"
    )
    parser.add_argument("--rounds", type=int, default=4, help="rounds per version; the median is reported")
    run_bench.add_load_options(parser, half_rate_help="also compare p99 at half the before version's maximum")
    parser.add_argument("--package", default="event_service", help="import package of the baked services")
    parser.add_argument(
        "--service-python",
        default=sys.executable,
        help="python with event-runtime and the bakes' other dependencies installed, not the bakes",
    )
    for side in SIDES:
        parser.add_argument(
            f"--{side}-python", help=f"python for the {side} side (default: --service-python), its runtime installed"
        )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--json", type=Path, help="also write every round as JSON to this file")
    args = parser.parse_args(argv)

    args.variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in args.variants if name not in service_variants]
    if unknown or not args.variants:
        parser.error(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(service_variants)}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    bakes = {side: getattr(args, side).resolve() for side in SIDES}
    for side, bake in bakes.items():
        if not (bake / "src" / args.package).is_dir():
            parser.error(f"--{side} {bake}: no src/{args.package} there; is it a baked project?")
    pythons = {side: getattr(args, f"{side}_python") or args.service_python for side in SIDES}
    for side, python in pythons.items():
        found = shutil.which(python)
        if not found:
            parser.error(f"--{side}-python {python}: no such python")
        # not resolved: a venv's python links to the interpreter it was made from, which other venvs share
        pythons[side] = os.path.abspath(found)
    if bakes["before"] == bakes["after"] and pythons["before"] == pythons["after"]:
        parser.error("--before and --after are the same directory, run by the same python")
    if not shutil.which("wrk") or not shutil.which("taskset"):
        parser.error("needs wrk and taskset on PATH (apt-get install wrk util-linux)")

    commands = {
        # server_commands' own needs: the service python, and the package to run
        side: server_commands(
            argparse.Namespace(python=sys.executable, service_python=pythons[side], package=args.package), bake
        )
        for side, bake in bakes.items()
    }
    sources = {}
    for side in SIDES:
        try:
            sources[side] = source = imported_from(commands[side], args.package)
        except subprocess.CalledProcessError as error:
            parser.error(f"--{side}: {pythons[side]} cannot import {args.package}: {error.stderr.strip()[-1500:]}")
        if not source.package.is_relative_to(bakes[side]):
            parser.error(
                f"--{side}: {pythons[side]} imports {args.package} from {source.package}, not from {bakes[side]}; "
                "use a python where neither bake is installed (pip install its dependencies only)"
            )
        if source.runtime is None:
            parser.error(
                f"--{side}: {pythons[side]} has no event_runtime to run {bakes[side]} with; "
                "pip install the bake's pin of event-runtime there"
            )

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as temp:
        comparisons = compare(args, commands, Path(temp))
    table = render(comparisons, args, sources, run_bench.machine_description())
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(as_json(comparisons, sources, pythons), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
