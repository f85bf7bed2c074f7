"""{{ cookiecutter.project_name }}: your event schemas in events/, your handlers in handlers/, the service in app.py.

The runtime (ingress, bus, workers, settings, metrics, the testing kit) is the `event-runtime` package, pinned in
pyproject.toml.
"""

from importlib.metadata import PackageNotFoundError, metadata, version

try:
    __version__ = version("{{ cookiecutter.project_slug }}")
    __summary__ = metadata("{{ cookiecutter.project_slug }}")["Summary"] or ""
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
    __summary__ = ""
