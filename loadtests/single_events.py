"""Single events only: one structured-mode CloudEvent per request, the event mix of event-mix.json."""

from loadtest_kit import (
    gate,  # noqa: F401  (registers the options and the release gate)
    users,
)
from loadtest_kit.shapes import NamedShape  # noqa: F401  (--shape constant|ramp|step|spike|soak)


class SingleEvents(users.SingleEventUser):
    pass
