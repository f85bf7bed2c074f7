import pytest

from event_runtime.settings import SettingsError, load_settings


def test_defaults_describe_a_development_service_on_the_embedded_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICE_ENV", raising=False)
    monkeypatch.delenv("SERVICE_BUS_URL", raising=False)
    settings = load_settings()
    assert settings.env == "development"
    assert settings.bus_url == "sqlite:///./var/events.db"


def test_a_services_own_defaults_replace_the_runtimes_and_the_environment_wins_over_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SERVICE_BUS_URL", raising=False)
    monkeypatch.setenv("SERVICE_REDIS_PARTITIONS", "4")
    defaults = {"bus_url": "redis://127.0.0.1:6379/0", "redis_partitions": 32}
    settings = load_settings(defaults)
    assert settings.bus_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_partitions == 4
    assert load_settings(defaults, redis_partitions=8).redis_partitions == 8


def test_production_without_tokens_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_ENV", "production")
    monkeypatch.setenv("SERVICE_AUTH_TOKENS", " ")
    with pytest.raises(SettingsError, match="SERVICE_AUTH_TOKENS"):
        load_settings()


def test_tokens_are_split_on_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_AUTH_TOKENS", "one, two,,")
    assert load_settings().tokens == ("one", "two")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SERVICE_BUS_URL", "kafka://x"), ("SERVICE_MAX_BODY_BYTES", "-1"), ("SERVICE_LOG_LEVEL", "chatty")],
)
def test_an_invalid_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
