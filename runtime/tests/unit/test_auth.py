"""The checks of auth.py on their own: bearer tokens, Standard Webhooks signatures, the token bucket."""

import base64
import json

import pytest

from event_runtime.auth import (
    BearerTokens,
    RateLimiter,
    SignatureCheck,
    signed_headers,
    signing_key_bytes,
)
from event_runtime.cloudevents import EventRejected, RejectionReason

# the example of the Standard Webhooks specification (spec/standard-webhooks.md, "Signature scheme")
SPEC_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
CURRENT = "whsec_" + base64.b64encode(b"current key of sender one, 32 b").decode()
PREVIOUS = "whsec_" + base64.b64encode(b"previous key of sender one, 33 b").decode()
OTHER = "whsec_" + base64.b64encode(b"a key nobody configured, 32 byte").decode()
STRUCTURED = {"content-type": "application/cloudevents+json"}
NOW = 1_800_000_000.0


def check(*keys: str, window: float = 300.0) -> SignatureCheck:
    return SignatureCheck(keys, window, clock=lambda: NOW)


def refusal(error: EventRejected) -> tuple[int, str]:
    return error.status, error.body["error"]


def test_signing_reproduces_the_example_of_the_standard_webhooks_spec() -> None:
    headers = signed_headers(SPEC_KEY, SPEC_BODY, SPEC_ID, SPEC_TIMESTAMP)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }
    SignatureCheck([SPEC_KEY], 300, clock=lambda: SPEC_TIMESTAMP + 1).verify({**STRUCTURED, **headers}, SPEC_BODY)


def test_the_current_and_the_previous_key_both_pass_and_another_key_does_not() -> None:
    body = json.dumps({"specversion": "1.0"}).encode()
    for key in (CURRENT, PREVIOUS):
        check(CURRENT, PREVIOUS).verify({**STRUCTURED, **signed_headers(key, body, "m-1", int(NOW))}, body)
    with pytest.raises(EventRejected) as refused:
        check(CURRENT, PREVIOUS).verify({**STRUCTURED, **signed_headers(OTHER, body, "m-1", int(NOW))}, body)
    assert refusal(refused.value) == (401, "bad_signature")
    assert refused.value.reason is RejectionReason.BAD_SIGNATURE


def test_a_header_with_several_signatures_passes_when_one_matches_and_other_versions_are_skipped() -> None:
    body = b"{}"
    good = signed_headers(CURRENT, body, "m-2", int(NOW))
    wrong = signed_headers(OTHER, body, "m-2", int(NOW))["webhook-signature"]
    good["webhook-signature"] = f"v1a,bm90LWFzeW1tZXRyaWM= {wrong} v1,not*base64 {good['webhook-signature']}"
    check(CURRENT).verify({**STRUCTURED, **good}, body)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda headers, body: (headers, body + b" "),  # the body changed
        lambda headers, body: ({**headers, "webhook-id": "m-other"}, body),  # the id changed
        lambda headers, body: ({**headers, "webhook-timestamp": str(int(NOW) + 1)}, body),  # the timestamp changed
        lambda headers, body: ({k: v for k, v in headers.items() if k != "webhook-signature"}, body),
        lambda headers, body: ({k: v for k, v in headers.items() if k != "webhook-id"}, body),
        lambda headers, body: ({**headers, "webhook-timestamp": "1.8e9"}, body),
        lambda headers, body: ({**headers, "webhook-signature": "v2," + headers["webhook-signature"][3:]}, body),
    ],
    ids=["body", "id", "timestamp", "no-signature", "no-id", "timestamp-not-seconds", "unknown-version"],
)
def test_anything_changed_or_missing_is_a_bad_signature(tamper: object) -> None:
    body = b'{"specversion": "1.0"}'
    headers, sent = tamper({**STRUCTURED, **signed_headers(CURRENT, body, "m-3", int(NOW))}, body)  # type: ignore[operator]
    with pytest.raises(EventRejected) as refused:
        check(CURRENT).verify(headers, sent)
    assert refusal(refused.value) == (401, "bad_signature")


@pytest.mark.parametrize("offset", [-301, 301, -86_400])
def test_a_genuine_signature_outside_the_window_is_a_stale_timestamp(offset: int) -> None:
    body = b"{}"
    headers = {**STRUCTURED, **signed_headers(CURRENT, body, "m-4", int(NOW) + offset)}
    with pytest.raises(EventRejected) as refused:
        check(CURRENT, window=300).verify(headers, body)
    assert refusal(refused.value) == (401, "stale_timestamp")
    check(CURRENT, window=abs(offset) + 1).verify(headers, body)


def test_binary_mode_is_refused_when_signing_is_on_as_its_attributes_are_not_signed() -> None:
    body = b'{"order_id": "o-1"}'
    headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "e-1"}
    with pytest.raises(EventRejected) as refused:
        check(CURRENT).verify({**headers, **signed_headers(CURRENT, body, "m-5", int(NOW))}, body)
    assert refusal(refused.value) == (401, "unsigned_attributes")


@pytest.mark.parametrize("key", ["whsec_not*base64", "whsec_c2hvcnQ=", ""])
def test_a_key_that_is_not_base64_of_at_least_24_bytes_is_refused_without_being_quoted(key: str) -> None:
    with pytest.raises(ValueError) as refused:
        signing_key_bytes(key)
    assert key.removeprefix("whsec_") not in str(refused.value) or not key


def test_a_key_may_be_written_without_its_prefix_or_padding() -> None:
    assert signing_key_bytes(CURRENT) == signing_key_bytes(CURRENT.removeprefix("whsec_").rstrip("="))


def test_bearer_tokens_name_the_token_that_matched_and_refuse_others() -> None:
    tokens = BearerTokens(["one-token", "two-token"])
    assert tokens.identify("Bearer two-token") == 1
    assert tokens.identify("bearer  one-token ") == 0
    for wrong in (None, "", "Bearer", "Bearer three-token", "Basic one-token", "one-token"):
        with pytest.raises(EventRejected) as refused:
            tokens.identify(wrong)
        assert refusal(refused.value) == (401, "unauthorized")
    assert BearerTokens([]).identify(None) is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_gets_its_burst_then_its_rate_and_a_429_says_when_to_come_back() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.take("sender")
    with pytest.raises(EventRejected) as refused:
        limiter.take("sender")
    assert refusal(refused.value) == (429, "rate_limited")
    assert refused.value.reason is RejectionReason.RATE_LIMITED
    assert refused.value.headers == {"retry-after": "1"} and refused.value.body["retry_after_seconds"] == 1
    clock.now += 0.5  # one request's worth at 2 per second
    limiter.take("sender")
    with pytest.raises(EventRejected):
        limiter.take("sender")
    clock.now += 60  # refills up to the burst, not beyond
    for _ in range(3):
        limiter.take("sender")
    with pytest.raises(EventRejected):
        limiter.take("sender")


def test_each_token_has_its_own_bucket() -> None:
    limiter = RateLimiter(rate=0.01, burst=1, clock=Clock())
    limiter.take(0)
    limiter.take(1)
    with pytest.raises(EventRejected) as refused:
        limiter.take(0)
    assert refused.value.headers["retry-after"] == "100"  # 1 / 0.01 per second


def test_the_buckets_are_bounded_and_the_least_recently_seen_is_forgotten() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, max_buckets=3, clock=Clock())
    for key in range(10):
        limiter.take(key)
        assert len(limiter) <= 3
    limiter.take(0)  # forgotten long ago: a full bucket again
    with pytest.raises(EventRejected):
        limiter.take(9)  # still remembered, still empty
