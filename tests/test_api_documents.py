"""A bake's API documents, checked by the tools that define them: the AsyncAPI CLI validates what `<slug> asyncapi`
writes, openapi-spec-validator what `<slug> openapi` writes, both equal what the running service serves, and
schemathesis drives the running bake from its OpenAPI document: no 5xx, every status, header and body as
documented. Tools: tests/requirements/apidocs.txt (pip), .ci/setup-apidocs.sh (the AsyncAPI CLI, npm)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from service_process import ServiceProcess
from support import bake, run_in

pytestmark = pytest.mark.slow

TOKEN = "apidocs-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
PLACED = "com.example.order.placed"
SCHEMATHESIS_SEED = 20261207  # fixed: a failure is reproduced by running the same command
SCHEMATHESIS_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                       "response_headers_conformance", "response_schema_conformance")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, baked_python: Path) -> Path:
    return bake(tmp_path_factory.mktemp("apidocs"))


@pytest.fixture(scope="module")
def service(project: Path, baked_python: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    store = tmp_path_factory.mktemp("apidocs-store") / "events.db"
    env = {"SERVICE_AUTH_TOKENS": TOKEN, "SERVICE_BUS_URL": f"sqlite:///{store}", "SERVICE_MAX_WAIT_SECONDS": "2"}
    with ServiceProcess(project, baked_python, env=env) as running:
        running.wait_ready(60)
        yield running


def written(project: Path, python: Path, command: str, output: Path, **env: str) -> dict[str, Any]:
    result = run_in(project, python, "python", "-m", "event_service", command, "--output", str(output), timeout=60,
                    **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(output.read_text())


def test_the_cli_writes_the_documents_the_service_serves(project: Path, baked_python: Path,
                                                         service: ServiceProcess, tmp_path: Path) -> None:
    for command in ("asyncapi", "openapi"):
        # the same settings as the service: its limits show in the documents
        document = written(project, baked_python, command, tmp_path / f"{command}.json", **service.env)
        served = httpx.get(f"{service.url}/{command}.json", headers=AUTH, timeout=10)
        assert served.status_code == 200 and served.json() == document, command
        assert httpx.get(f"{service.url}/{command}.json", timeout=10).status_code == 401  # a sender's token
        assert document["info"]["title"] == "event-service"
    printed = run_in(project, baked_python, "python", "-m", "event_service", "asyncapi", timeout=60, **service.env)
    assert json.loads(printed.stdout) == json.loads((tmp_path / "asyncapi.json").read_text())


def asyncapi_validate(document: Path, home: Path) -> subprocess.CompletedProcess[str]:
    cli = shutil.which("asyncapi")
    assert cli, "the AsyncAPI CLI is not installed: run .ci/setup-apidocs.sh"
    # its usage data stays off (this machine reaches no such host): its own settings file says so, and CI=true
    settings = home / "asyncapi-analytics.json"
    settings.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "tests"}))
    env = {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(settings), "CI": "true", "NO_COLOR": "1"}
    return subprocess.run([cli, "validate", str(document), "--fail-severity", "warn"], capture_output=True,
                          text=True, timeout=120, env=env)


def test_the_asyncapi_cli_validates_the_asyncapi_document(project: Path, baked_python: Path, tmp_path: Path) -> None:
    path = tmp_path / "asyncapi.json"
    document = written(project, baked_python, "asyncapi", path)
    assert document["asyncapi"] == "3.0.0"
    assert sorted(c["title"] for c in document["channels"].values()) == [
        "com.example.order.cancelled", "com.example.order.placed"]
    result = asyncapi_validate(path, tmp_path)
    assert result.returncode == 0 and "is valid" in result.stdout, result.stdout + result.stderr
    # the validator can fail: an operation on a channel that does not exist
    broken = copy.deepcopy(document)
    next(iter(broken["operations"].values()))["channel"] = {"$ref": "#/channels/no-such-channel"}
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    refused = asyncapi_validate(tmp_path / "broken.json", tmp_path)
    assert refused.returncode != 0, refused.stdout + refused.stderr


def test_the_openapi_document_is_valid_and_its_schemas_agree_with_the_service(
        project: Path, baked_python: Path, service: ServiceProcess, tmp_path: Path) -> None:
    document = written(project, baked_python, "openapi", tmp_path / "openapi.json")
    validate_openapi(document)
    broken = copy.deepcopy(document)
    broken["paths"]["/events"]["post"]["responses"]["202"]["content"] = "not a media type map"
    with pytest.raises(OpenAPIValidationError):
        validate_openapi(broken)
    # the structured-event schema says what the service says: valid events are taken, the others refused
    validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/runtime.Event", **document})
    data = {"order_id": "o-1", "customer_id": "c-1", "amount_cents": 100, "currency": "EUR"}
    event = {"specversion": "1.0", "id": "apidocs-1", "source": "/apidocs", "type": PLACED, "data": data}
    cases = [event, {**event, "data": {**data, "currency": "euro"}}, {**event, "type": "com.example.nothing"},
             {**event, "partitionkey": 7}, {**event, "partitionkey": 1.5}, {**event, "Bad-Name": "x"}]
    for case in cases:
        answer = httpx.post(f"{service.url}/events", json=case, timeout=10,
                            headers={**AUTH, "content-type": "application/cloudevents+json"})
        assert (answer.status_code == 202) == validator.is_valid(case), (case, answer.text)


def test_schemathesis_finds_no_server_error_and_nothing_undocumented(service: ServiceProcess, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    assert schemathesis.exists(), "schemathesis is not installed: tests/requirements/apidocs.txt"
    accepted_before = service.metric("events_accepted_total")
    command = [str(schemathesis), "run", f"{service.url}/openapi.json", "--url", service.url,
               "--header", f"Authorization: Bearer {TOKEN}", "--checks", ",".join(SCHEMATHESIS_CHECKS),
               "--max-examples", "50", "--seed", str(SCHEMATHESIS_SEED), "--workers", "1",
               "--request-timeout", "20", "--wait-for-schema", "10"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""})
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout, result.stdout[-4000:]
    log = service.log()
    assert "post_events_failed" not in log and "Traceback" not in log, log[-4000:]
    # it reached the handlers too: some of what it generated was valid and stored
    assert service.metric("events_accepted_total") > accepted_before
