"""The command-line options the load tests add to Locust's (also settable in locust.conf or as LOCUST_* env)."""

from __future__ import annotations

from .event_mix import DEFAULT_MIX_FILE
from .thresholds import DEFAULT_THRESHOLDS_FILE, Thresholds

SHAPES = ("constant", "ramp", "step", "spike", "soak")


def add_options(parser) -> None:
    """Register the options on Locust's parser (called from the `init_command_line_parser` event)."""
    group = parser.add_argument_group("event load", "what the CloudEvents users send")
    group.add_argument(
        "--event-mix",
        default=str(DEFAULT_MIX_FILE),
        env_var="LOCUST_EVENT_MIX",
        help="JSON file: event types, weights, data generators, ordering-key field",
    )
    group.add_argument(
        "--events-path",
        default="/events",
        env_var="LOCUST_EVENTS_PATH",
        help="path of the CloudEvents endpoint on --host",
    )
    group.add_argument(
        "--batch-size", type=int, default=100, env_var="LOCUST_BATCH_SIZE", help="events per request of the batch user"
    )
    group.add_argument(
        "--ordering-keys",
        type=int,
        default=1000,
        env_var="LOCUST_ORDERING_KEYS",
        help="number of distinct ordering keys (subjects) events are spread over",
    )
    group.add_argument(
        "--duplicate-ratio",
        type=float,
        default=0.0,
        env_var="LOCUST_DUPLICATE_RATIO",
        help="share of events that re-send an already accepted event (0..1)",
    )
    group.add_argument(
        "--user-throughput",
        type=float,
        default=0.0,
        env_var="LOCUST_USER_THROUGHPUT",
        help="requests per second per user; 0 sends as fast as the service answers",
    )
    group.add_argument(
        "--prefer-wait",
        type=float,
        default=0.0,
        env_var="LOCUST_PREFER_WAIT",
        help="send `Prefer: wait=N`: the service answers once the handlers finished (end-to-end latency); 0 = off",
    )
    group.add_argument(
        "--shape",
        choices=SHAPES,
        default="constant",
        env_var="LOCUST_SHAPE",
        help="load shape over --run-time, peaking at --users",
    )
    group.add_argument(
        "--progress-seconds",
        type=float,
        default=10.0,
        env_var="LOCUST_PROGRESS_SECONDS",
        help="seconds between progress lines on stderr (elapsed, users, requests, failures); 0 = none",
    )
    group.add_argument(
        "--shape-steps", type=int, default=5, env_var="LOCUST_SHAPE_STEPS", help="number of steps of the step shape"
    )

    gate = parser.add_argument_group("release gate", "thresholds checked when the run ends (master or local)")
    gate.add_argument(
        "--thresholds",
        default=str(DEFAULT_THRESHOLDS_FILE),
        env_var="LOCUST_THRESHOLDS",
        help="TOML file of thresholds; '' for none (then only flags apply)",
    )
    for name in Thresholds.names():
        gate.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            default=None,
            env_var=f"LOCUST_{name.upper()}",
            help=f"override {name} of the thresholds file",
        )
    gate.add_argument(
        "--metrics-url",
        default="",
        env_var="LOCUST_METRICS_URL",
        help="comma-separated /metrics URLs of every service instance (default: HOST/metrics)",
    )
    gate.add_argument(
        "--no-delivery-check",
        action="store_true",
        default=False,
        env_var="LOCUST_NO_DELIVERY_CHECK",
        help="skip the nothing-lost check (no access to the service's /metrics)",
    )
    gate.add_argument(
        "--gate-report",
        default="",
        env_var="LOCUST_GATE_REPORT",
        help="write the gate's verdict, breaches and counts as JSON to this file",
    )
