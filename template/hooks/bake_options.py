"""Checks on the options a user gave, run by pre_gen_project before anything is written."""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PACKAGE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# registry host[:port][/namespace...], lower case as image references require
REGISTRY_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")

CHOICES = {
    "python_version": ("3.11", "3.12", "3.13"),
    "event_bus": ("sqlite", "redis"),
    "ci": ("github", "jenkins", "both"),
    "license": ("MIT", "Apache-2.0", "Proprietary"),
}


def problems_with(options: Mapping[str, object]) -> list[str]:
    """Return one line per invalid option, each naming the option; empty when all are valid."""
    problems: list[str] = []
    slug = str(options.get("project_slug", ""))
    package = str(options.get("package_name", ""))
    if not slug:
        problems.append("project_slug: must not be empty")
    elif not SLUG_PATTERN.match(slug):
        problems.append(
            f"project_slug: {slug!r} must be lower case letters and digits separated by single hyphens, "
            "starting with a letter (it names the folder, the distribution and the command)"
        )
    if not package:
        problems.append("package_name: must not be empty")
    elif not PACKAGE_PATTERN.match(package) or not package.isidentifier():
        problems.append(f"package_name: {package!r} must be a lower case Python identifier (letters, digits, _)")
    elif keyword.iskeyword(package) or keyword.issoftkeyword(package):
        problems.append(f"package_name: {package!r} is a Python keyword and cannot be imported")
    if not str(options.get("project_name", "")).strip():
        problems.append("project_name: must not be empty")
    email = str(options.get("author_email", ""))
    if not EMAIL_PATTERN.match(email):
        problems.append(f"author_email: {email!r} is not an e-mail address")
    registry = str(options.get("container_registry", ""))
    if not REGISTRY_PATTERN.match(registry):
        problems.append(
            f"container_registry: {registry!r} must look like host[:port]/namespace in lower case, "
            "without a scheme (for example ghcr.io/acme)"
        )
    year = str(options.get("copyright_year", "2026"))  # absent from contexts made before the option existed
    if not re.fullmatch(r"(19[7-9][0-9]|2[0-9]{3})", year):
        problems.append(f"copyright_year: {year!r} must be a year of four digits, for example 2026")
    for name, allowed in CHOICES.items():
        value = str(options.get(name, ""))
        if value not in allowed:
            problems.append(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return problems
