"""The composition root: the service is your handler registry and its name; `main` is its console script."""

from event_runtime import EventService

from . import __summary__, __version__
from .handlers import registry

service = EventService(
    registry,
    name="{{ cookiecutter.project_slug }}",
    version=__version__,
    summary=__summary__,
{%- if cookiecutter.event_bus == "redis" %}
    # the default bus of this service; SERVICE_BUS_URL overrides it
    bus_url="redis://127.0.0.1:6379/0",
{%- endif %}
)
main = service.main
