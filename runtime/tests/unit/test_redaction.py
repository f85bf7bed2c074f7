"""Secrets are hidden in whatever the service writes or shows: URLs with credentials, configured tokens and keys."""

import pytest

from event_runtime.redaction import REDACTED, configured_secrets, redact, url_secrets
from event_runtime.settings import Settings, SettingsError, load_settings, settings_reference

SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pa55word@cache:6379/0", "redis://user:***@cache:6379/0"),
        ("redis://:s3cret-pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://default:s3cret-pw@cache.example:6380/1", "rediss://default:***@cache.example:6380/1"),
        ("redis://:p%40ss%2Fword@cache:6379/0", "redis://:***@cache:6379/0"),
        ("redis://:p@ss@cache:6379/0", "redis://:***@cache:6379/0"),  # an unencoded @: the last one ends it
        ("redis://s3cret-pw@cache:6379/0", "redis://***@cache:6379/0"),  # a lone userinfo may be a password
        ("unix:///run/redis.sock?db=0&password=s3cret-pw", "unix:///run/redis.sock?db=0&password=***"),
        ("unix://:s3cret-pw@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("sqlite:///./var/events.db", "sqlite:///./var/events.db"),
        ("sqlite:////srv/data/user@host.db", "sqlite:////srv/data/user@host.db"),
        ("memory://", "memory://"),
    ],
)
def test_a_urls_password_is_hidden_and_everything_else_kept(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_urls_inside_a_message_are_redacted_where_they_stand() -> None:
    message = (
        "Error connecting to 'redis://admin:s3cret-pw@10.0.0.5:6379/0' (via https://u:tok@api.example/x?token=t1 )"
    )
    assert redact(message) == (
        "Error connecting to 'redis://admin:***@10.0.0.5:6379/0' (via https://u:***@api.example/x?token=*** )"
    )


def test_given_secrets_are_hidden_wherever_they_occur_longest_first() -> None:
    text = "token=abc, then abcdef in a word, and abc again"
    assert redact(text, ["abc", "abcdef"]) == "token=***, then *** in a word, and *** again"
    assert redact("nothing here", []) == "nothing here"


def test_the_secrets_of_a_url_are_its_password_as_written_and_decoded_and_its_password_parameter() -> None:
    assert set(url_secrets("redis://user:p%40ss@cache:6379/0")) == {"p%40ss", "p@ss"}
    assert url_secrets("unix:///run/redis.sock?password=pw1&db=2") == ("pw1",)
    assert url_secrets("sqlite:///./var/events.db") == ()


def test_configured_secrets_are_tokens_keys_the_metrics_token_and_the_bus_password() -> None:
    settings = Settings(
        bus_url="redis://:s3cret-pw@127.0.0.1:6379/0",
        auth_tokens="token-one, token-two",
        signing_keys=SIGNING_KEY,
        metrics_token="scrape-token",
    )
    secrets = set(configured_secrets(settings))
    assert {"token-one", "token-two", "scrape-token", "s3cret-pw", SIGNING_KEY} <= secrets
    assert SIGNING_KEY.removeprefix("whsec_") in secrets
    assert "" not in secrets


def test_the_settings_repr_shows_no_secret() -> None:
    settings = Settings(bus_url="redis://:s3cret-pw@h:6379/0", auth_tokens="token-one", metrics_token="scrape-token")
    shown = repr(settings)
    assert "s3cret-pw" not in shown and "token-one" not in shown and "scrape-token" not in shown


def test_the_settings_table_never_shows_a_secret_a_service_made_its_default() -> None:
    rows = {
        row.variable: row.default
        for row in settings_reference({"bus_url": "redis://:s3cret-pw@cache:6379/0", "auth_tokens": "token-one"})
    }
    assert rows["SERVICE_BUS_URL"] == "redis://:***@cache:6379/0"
    assert rows["SERVICE_AUTH_TOKENS"] == REDACTED
    assert rows["SERVICE_METRICS_TOKEN"] == ""  # empty stays empty: the table prints "(none)"


def test_a_bad_signing_key_is_named_by_its_variable_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_SIGNING_KEYS", f"{SIGNING_KEY},whsec_not*base64-s3cret")
    with pytest.raises(SettingsError, match="SERVICE_SIGNING_KEYS") as refused:
        load_settings()
    assert "s3cret" not in str(refused.value) and SIGNING_KEY not in str(refused.value)
