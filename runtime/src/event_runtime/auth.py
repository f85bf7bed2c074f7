"""Who may post events, and how often: bearer tokens, webhook signatures, a request rate per token.

Every check raises EventRejected; ingress answers it and counts it once, like any other refusal. Signatures follow
the Standard Webhooks scheme (https://www.standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256>` over
`<webhook-id>.<webhook-timestamp>.<body>`, keys written `whsec_<base64>`; its libraries sign requests this verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .cloudevents import BATCH, STRUCTURED, EventRejected, RejectionReason

if TYPE_CHECKING:
    from .settings import Settings

KEY_PREFIX = "whsec_"
# the Standard Webhooks spec asks for keys of 24 to 64 bytes
MIN_KEY_BYTES = 24
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"
SIGNATURE_VERSION = "v1"
# a sender signs with one key, or with two while it rotates: more entries are not read, so a long header costs
# no more HMAC comparisons than this
MAX_SIGNATURES = 8
# buckets of the rate limiter: one per token, so this bounds memory even with many tokens
MAX_RATE_BUCKETS = 10_000


def signing_key_bytes(key: str) -> bytes:
    """The HMAC key a Standard Webhooks key (`whsec_<base64>`, the prefix optional) stands for; ValueError (never
    naming the key) if it is not base64 or shorter than MIN_KEY_BYTES."""
    encoded = key.strip().removeprefix(KEY_PREFIX)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"a key is not base64 (write keys as {KEY_PREFIX}<base64>)") from None
    if len(decoded) < MIN_KEY_BYTES:
        raise ValueError(f"a key decodes to {len(decoded)} bytes; keys have at least {MIN_KEY_BYTES}")
    return decoded


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of one request, as the `v1,` entry of `webhook-signature` carries it."""
    return base64.b64encode(_digest(key, message_id, timestamp, body)).decode()


def _digest(key: bytes, message_id: str, timestamp: str, body: bytes) -> bytes:
    # header values reach the app decoded as latin-1: encoding them back gives the bytes the sender signed
    signed = b"%s.%s.%s" % (message_id.encode("latin-1"), timestamp.encode("ascii"), body)
    return hmac.new(key, signed, hashlib.sha256).digest()


def signed_headers(key: str, body: bytes, message_id: str, timestamp: int | None = None) -> dict[str, str]:
    """The three headers that sign `body` with `key` (`whsec_...`) now, or at `timestamp` (Unix seconds)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    value = signature(signing_key_bytes(key), message_id, stamp, body)
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"{SIGNATURE_VERSION},{value}"}


class BearerTokens:
    """`Authorization: Bearer <token>` against a fixed set of tokens; no tokens means no check."""

    def __init__(self, tokens: Iterable[str], detail: str = "missing or wrong bearer token") -> None:
        self._tokens = [token.encode() for token in tokens]
        self._detail = detail

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def identify(self, authorization: str | None) -> int | None:
        """Which token the request carries (its index), None when no tokens are set; 401 otherwise."""
        if not self._tokens:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        offered = token.strip().encode("latin-1")
        # compare against every token so the time taken does not tell which one was close
        matched = None
        for index, known in enumerate(self._tokens):
            if hmac.compare_digest(offered, known):
                matched = index
        if scheme.lower() != "bearer" or matched is None:
            raise EventRejected(
                RejectionReason.UNAUTHORIZED, "unauthorized", self._detail, headers={"www-authenticate": "Bearer"}
            )
        return matched


class SignatureCheck:
    """Standard Webhooks signatures with any of `keys` (a sender's current and previous key both pass), and a
    timestamp at most `window_seconds` from this clock: a captured request cannot be replayed after that."""

    def __init__(self, keys: Sequence[str], window_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self._keys = [signing_key_bytes(key) for key in keys]
        self._window = window_seconds
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Pass, or raise a 401 `bad_signature` / `unsigned_attributes` / `stale_timestamp`. Reads the body's bytes
        only: nothing of an unsigned request is parsed."""
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if "ce-specversion" in headers and media_type not in (STRUCTURED, BATCH):
            # binary mode: the attributes are headers, and the signature covers the body only
            raise _refused(
                "unsigned_attributes",
                "the signature covers the body only, and binary mode carries the event's attributes in ce-* headers: "
                f"send signed events in structured ({STRUCTURED}) or batch ({BATCH}) mode",
            )
        message_id, timestamp = headers.get(ID_HEADER), headers.get(TIMESTAMP_HEADER)
        offered = headers.get(SIGNATURE_HEADER)
        if not (message_id and timestamp and offered):
            needed = f"{ID_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}"
            raise _refused("bad_signature", f"a signed request needs the {needed} headers")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise _refused("bad_signature", f"{TIMESTAMP_HEADER} must be Unix time in whole seconds")
        candidates = _signatures(offered)
        matched = False
        for key in self._keys:
            expected = _digest(key, message_id, timestamp, body)
            for candidate in candidates:
                matched |= hmac.compare_digest(candidate, expected)
        if not matched:
            raise _refused("bad_signature", f"no {SIGNATURE_VERSION} entry of {SIGNATURE_HEADER} matches a signing key")
        # checked once the signature holds: a stale answer then means an old (or replayed) genuine request
        skew = self._clock() - int(timestamp)
        if abs(skew) > self._window:
            raise _refused(
                "stale_timestamp",
                f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {'old' if skew > 0 else 'in the future'}, more than the "
                f"{self._window:g} s allowed: sign each request when it is sent (and check the sender's clock)",
            )


class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `rate` per second. At most `max_buckets` keys
    are remembered; the least recently seen is forgotten first (it starts again with a full bucket)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_buckets: int = MAX_RATE_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens left, when), least recent first

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable) -> None:
        """Spend one request of `key`'s bucket, or raise a 429 `rate_limited` with `Retry-After`."""
        now = self._clock()
        found = self._buckets.pop(key, None)  # put back below, at the end: the most recently seen
        tokens = self.burst if found is None else min(self.burst, found[0] + (now - found[1]) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > self._max_buckets:
            del self._buckets[next(iter(self._buckets))]
        if not allowed:
            retry_after = max(1, math.ceil((1 - tokens) / self.rate))
            raise EventRejected(
                RejectionReason.RATE_LIMITED,
                "rate_limited",
                f"more than {self.rate:g} requests per second (bursts of {self.burst}) with this token: "
                f"nothing was stored, retry after {retry_after} s",
                headers={"retry-after": str(retry_after)},
                retry_after_seconds=retry_after,
            )


class RequestAuth:
    """The checks of one service, from its settings: each is off unless its setting is set."""

    def __init__(self, settings: Settings) -> None:
        self.tokens = BearerTokens(settings.tokens)
        self.metrics_tokens = BearerTokens(
            _listed(settings.metrics_token), "missing or wrong bearer token for /metrics (SERVICE_METRICS_TOKEN)"
        )
        keys = _listed(settings.signing_keys)
        self.signatures = SignatureCheck(keys, settings.signing_replay_window_seconds) if keys else None
        rate = settings.rate_limit_per_second
        self.rate_limiter = RateLimiter(rate, settings.rate_limit_burst) if rate > 0 else None

    def authorize(self, authorization: str | None) -> None:
        """Before anything else: the bearer token, then its rate (one bucket for all when no tokens are set)."""
        sender = self.tokens.identify(authorization)
        if self.rate_limiter is not None:
            self.rate_limiter.take(sender)

    def verify_signature(self, headers: Mapping[str, str], body: bytes) -> None:
        """Once the body is read, before it is parsed."""
        if self.signatures is not None:
            self.signatures.verify(headers, body)

    def authorize_metrics(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> None:
        """`GET /metrics` with SERVICE_METRICS_TOKEN set; a repeated Authorization header counts as none."""
        if self.metrics_tokens:
            values = [value for name, value in raw_headers if name.lower() == b"authorization"]
            self.metrics_tokens.identify(values[0].decode("latin-1") if len(values) == 1 else None)


def _signatures(header: str) -> list[bytes]:
    """The v1 entries of a `webhook-signature` header (space-separated `version,base64`), decoded; entries of other
    versions (`v1a`: asymmetric) and entries that are not base64 are skipped."""
    found = []
    for entry in header.split()[:MAX_SIGNATURES]:
        version, _, value = entry.partition(",")
        if version != SIGNATURE_VERSION or not value:
            continue
        try:
            found.append(base64.b64decode(value + "=" * (-len(value) % 4), validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _refused(error: str, detail: str) -> EventRejected:
    return EventRejected(RejectionReason.BAD_SIGNATURE, error, detail)


def _listed(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
