"""A short smoke test of the whole service through its HTTP API (the testing kit's `api` fixture)."""

import httpx
from event_runtime.testing import EventFactory

from {{ cookiecutter.package_name }}.app import service
from {{ cookiecutter.package_name }}.events import ORDER_PLACED

STRUCTURED = {"content-type": "application/cloudevents+json"}
Api = tuple[httpx.AsyncClient, object]


async def test_an_order_placed_event_is_accepted(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    order = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 1250, "currency": "EUR"}
    response = await client.post("/events", json=event_factory.event(ORDER_PLACED, order), headers=STRUCTURED)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}


async def test_an_event_type_without_a_handler_is_refused_with_422(api: Api, event_factory: EventFactory) -> None:
    client, _ = api
    response = await client.post("/events", json=event_factory.event("com.example.unknown", {}), headers=STRUCTURED)
    assert response.status_code == 422
    assert response.json()["error"] == "unknown_type"


async def test_the_service_is_ready_and_names_its_version_and_the_runtimes(api: Api) -> None:
    client, _ = api
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["version"] and body["runtime_version"]


def test_the_service_is_named_after_the_project() -> None:
    assert service.name == "{{ cookiecutter.project_slug }}"
    assert service.settings().event_source == "/{{ cookiecutter.project_slug }}"
