"""The service package: your code in events/ and handlers/, the template's runtime in runtime/ and testing/."""

from importlib.metadata import PackageNotFoundError, metadata, version

try:
    __version__ = version("{{ cookiecutter.project_slug }}")
    __summary__ = metadata("{{ cookiecutter.project_slug }}")["Summary"] or ""
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
    __summary__ = ""
