"""Default load test: single-event and batch users posting the event mix, judged by the release gate.

Run from this folder: `locust --host http://127.0.0.1:8000` (locust.conf holds the defaults), or from the
project: `make loadtest HOST=http://127.0.0.1:8000`. Options: `locust --help` (groups "event load" and
"release gate").
"""

from loadtest_kit import (
    gate,  # noqa: F401  (registers the options and the release gate)
    users,
)
from loadtest_kit.shapes import NamedShape  # noqa: F401  (--shape constant|ramp|step|spike|soak)


class SingleEvents(users.SingleEventUser):
    weight = 3


class Batches(users.BatchEventUser):
    weight = 1
