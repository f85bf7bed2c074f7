"""Secrets out of what the service writes or shows: logs, `/readyz`, CLI output, error messages.

`redact` is the one function for it. It hides the password of every URL in a text (`redis://:***@host`, also
`?password=***`) and, as a last line of defence, every occurrence of the secrets it is given (the configured
tokens, signing keys and the bus URL's password: `configured_secrets`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from .settings import Settings

REDACTED = "***"
# scheme://userinfo@ as urlsplit reads it: the authority ends at the first / ? # (or blank), its userinfo at the
# last @ in it
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s]*)@")
# credentials in a query string (redis-py reads `?password=`)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;](?:password|passwd|pwd|token|access_token|secret|api_key|apikey)=)[^&#\s'\"]*", re.IGNORECASE
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the credentials of every URL in it replaced by `***`, and every occurrence of `secrets` too.

    A URL's user name is kept when it has a password (`user:***@`); a userinfo without `:` may be a password
    written where the user goes, so all of it is hidden (`***@`). Paths are untouched: `sqlite:///./var/a@b.db`
    has no userinfo.
    """
    if "://" in text:
        text = _USERINFO.sub(_hide_password, text)
    if "=" in text:
        text = _QUERY_SECRET.sub(rf"\g<name>{REDACTED}", text)
    pattern = _pattern(tuple(secrets))
    return pattern.sub(REDACTED, text) if pattern is not None else text


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL holds, as written and percent-decoded: its password (or a lone userinfo) and the values of
    `password=`-like query parameters."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL a client could use either; `redact` still hides what looks like credentials
        return ()
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    query = parse_qsl(parts.query, keep_blank_values=True)
    found += [value for name, value in query if _QUERY_SECRET.match(f"?{name}=")]
    return _with_decoded(found)


def configured_secrets(settings: Settings) -> tuple[str, ...]:
    """Every secret `settings` hold: the values of the fields marked secret, split on commas, and the bus URL's
    password. The log scrubber and `/readyz` hide these wherever they turn up."""
    found: list[str] = []
    for name, info in type(settings).model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("secret"):
            for part in str(getattr(settings, name)).split(","):
                # a Standard Webhooks key without its `whsec_` prefix is still the key
                found += [part.strip(), part.strip().removeprefix("whsec_")]
    found += url_secrets(settings.bus_url)
    return _with_decoded(found)


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{REDACTED}@" if colon else f"{match['scheme']}{REDACTED}@"


def _with_decoded(values: list[str]) -> tuple[str, ...]:
    unique = {value for value in values if value} | {unquote(value) for value in values if value}
    return tuple(sorted(unique, key=lambda value: (-len(value), value)))


@functools.lru_cache(maxsize=8)
def _pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    # longest first, so a secret that contains another is hidden whole
    wanted = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, wanted))) if wanted else None
