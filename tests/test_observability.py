"""The observability pack every bake carries (observability/ at the top, copied by the post-gen hook): alert rules
that promtool checks and unit-tests, and a Grafana dashboard whose every query a real Prometheus answers with
data while it scrapes a real bake under load.

Needs Debian's `prometheus` (promtool too) and `prometheus-blackbox-exporter`: .ci/setup-observability.sh.
The slow test takes about 30 s: a bake served by its CLI, a blackbox exporter and a Prometheus, all on 127.0.0.1
and stopped by PID.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from service_process import ServiceProcess
from support import REPO_ROOT, free_port
from test_loadtests_gate import inject_handler

PACK = REPO_ROOT / "observability"
# series the pack reads that are not the service's: Prometheus's own, and the blackbox exporter's probe of /readyz
NOT_FROM_THE_SERVICE = {"up", "probe_success"}
# what Grafana puts in place of its variables; 1 m holds the whole test's load at a 1 s scrape interval
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$instance": ".+"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                   "offset", "inf", "nan"}

FAILING_AUDIT_HANDLER = '''
from event_runtime import HandlerContext, HandlerRegistry

from ..events import ORDER_CANCELLED, OrderCancelled

handlers = HandlerRegistry()


@handlers.on(ORDER_CANCELLED, OrderCancelled, max_attempts=2)
async def audit_cancellation(cancellation: OrderCancelled, context: HandlerContext) -> None:
    raise RuntimeError("the audit log is down (injected by tests/test_observability.py)")
'''


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load((PACK / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads((PACK / "dashboard.json").read_text())


def panel_targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of every panel."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in dashboard()["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers, ranges, label
    lists, functions and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for word in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        if not text[word.end():].lstrip().startswith("(") and word.group().lower() not in PROMQL_KEYWORDS:
            names.add(word.group())
    return names


def require(*tools: str) -> None:
    for tool in tools:
        assert shutil.which(tool), f"{tool} is missing: run .ci/setup-observability.sh"


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def unit_tests_by_alert() -> dict[str, dict[str, list[str]]]:
    """alert name -> {"fires": [test names], "silent": [test names]} from alerts.test.yml."""
    found: dict[str, dict[str, list[str]]] = {}
    for test in yaml.safe_load((PACK / "alerts.test.yml").read_text())["tests"]:
        for case in test["alert_rule_test"]:
            kind = "fires" if case.get("exp_alerts") else "silent"
            found.setdefault(case["alertname"], {"fires": [], "silent": []})[kind].append(test["name"])
    return found


# --- the rules and their unit tests (quick: promtool only) ---


def test_make_check_alerts_in_a_bake_checks_the_rules_and_the_config_and_passes_the_unit_tests(bake_project):
    require("promtool")
    project = bake_project()
    result = subprocess.run(["make", "check-alerts"], cwd=project, capture_output=True, text=True, timeout=120,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rules())} rules found" in output
    assert "is valid prometheus config file syntax" in output
    assert "Unit Testing:  observability/alerts.test.yml\n  SUCCESS" in output
    help_text = subprocess.run(["make", "help"], cwd=project, capture_output=True, text=True, timeout=60,
                               check=True).stdout
    assert "check-alerts" in help_text


def test_every_alert_has_a_unit_test_it_fires_on_and_one_it_stays_silent_on():
    tests = unit_tests_by_alert()
    for rule in rules():
        assert tests.get(rule["alert"], {}).get("fires"), f"{rule['alert']}: no unit test where it fires"
        assert tests[rule["alert"]]["silent"], f"{rule['alert']}: no unit test where it stays silent"


def test_each_alert_s_unit_tests_catch_a_rule_that_never_fires_and_one_that_always_fires(tmp_path):
    """Each alert replaced by an expression that never fires fails its firing tests, and by one that always fires
    fails its silent tests. The 2 x alerts promtool runs go side by side (each takes about a second here)."""
    require("promtool")
    runs = []
    for alert, tests in unit_tests_by_alert().items():
        for broken_expr, failing_tests in (("vector(0) > 1", tests["fires"]), ("vector(1)", tests["silent"])):
            copy = tmp_path / f"{alert}-{broken_expr.replace(' ', '')}"
            copy.mkdir()
            groups = yaml.safe_load((PACK / "alerts.yml").read_text())
            for group in groups["groups"]:
                for rule in group["rules"]:
                    if rule["alert"] == alert:
                        rule["expr"] = broken_expr
            (copy / "alerts.yml").write_text(yaml.safe_dump(groups))
            unit_tests = yaml.safe_load((PACK / "alerts.test.yml").read_text())
            unit_tests["tests"] = [test for test in unit_tests["tests"]
                                   if any(case["alertname"] == alert for case in test["alert_rule_test"])]
            (copy / "alerts.test.yml").write_text(yaml.safe_dump(unit_tests))
            process = subprocess.Popen(["promtool", "test", "rules", "alerts.test.yml"], cwd=copy, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            runs.append((alert, broken_expr, failing_tests, process))
    assert {alert for alert, *_ in runs} == {rule["alert"] for rule in rules()}
    for alert, broken_expr, failing_tests, process in runs:
        output, _ = process.communicate(timeout=60)
        assert process.returncode != 0, f"{alert} as `{broken_expr}` passes its unit tests"
        for name in failing_tests:
            assert f"name: {name}," in output, f"{alert} as `{broken_expr}`: {name!r} did not fail"


def test_every_alert_waits_with_for_has_a_severity_and_a_runbook_section_the_bake_readme_has(bake_project):
    readme = (bake_project() / "README.md").read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in readme.splitlines() if line.startswith("#")}
    for rule in rules():
        name = rule["alert"]
        assert re.fullmatch(r"[1-9]\d*[smh]", rule.get("for", "")), f"{name}: no `for:`"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        document, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert document == "README.md" and anchor in anchors, f"{name}: {rule['annotations']['runbook_url']}"


# --- the dashboard (quick: its shape) ---


def test_the_dashboard_is_a_grafana_dashboard_with_queries_on_every_panel_and_no_overlaps():
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= variables.keys()
    cells: set[tuple[int, int]] = set()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        taken = {(x, y) for x in columns for y in rows}
        assert not taken & cells, f"{panel['title']} overlaps another panel"
        cells |= taken
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
        for target in panel["targets"]:
            assert target["expr"].strip() and metric_names(target["expr"]), (panel["title"], target["refId"])


def test_metric_names_are_read_out_of_promql():
    expr = ('histogram_quantile(0.99, sum by (handler, le) (rate(handler_duration_seconds_bucket{job="$job", '
            'instance=~"a|b"}[$__rate_interval]))) > 1e3 and on (job) max(bus_pending_events) unless up == 0')
    assert metric_names(expr) == {"handler_duration_seconds_bucket", "bus_pending_events", "up"}


# --- a real Prometheus scraping a real bake under load (slow) ---


@contextmanager
def started(arguments: list[str], log_path: Path, ready_url: str, timeout: float = 30) -> Iterator[None]:
    """A server process, waited on until `ready_url` answers 200, stopped by PID when the block ends."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, f"{arguments[0]} exited:\n{log_path.read_text()[-3000:]}"
                try:
                    if httpx.get(ready_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, f"{arguments[0]} not ready after {timeout} s"
                time.sleep(0.2)
            yield
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def scrape_config_for(project: Path, service_port: int, blackbox_port: int) -> tuple[dict[str, Any], str]:
    """The bake's example prometheus.yml pointed at this test's processes, scraping every second; and the
    service's job name."""
    config = yaml.safe_load((project / "observability" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(project / "observability" / "alerts.yml")]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{service_port}"]}]
        job["scrape_timeout"] = "1s"
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                relabel["replacement"] = f"127.0.0.1:{blackbox_port}"
    return config, config["scrape_configs"][0]["job_name"]


def cloud_event(event_type: str, data: Any, event_id: str | None = None) -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": "/observability-test",
            "type": event_type, "datacontenttype": "application/json", "data": data}


def order(number: int, currency: str = "EUR") -> dict[str, Any]:
    return {"order_id": f"o-{number}", "customer_id": f"c-{number}", "amount_cents": 100 + number, "currency": currency}


def put_load(url: str) -> dict[str, int]:
    """A few hundred events: some duplicates, some rejected, some dead-lettered. Returns what was sent."""
    batch = {"content-type": "application/cloudevents-batch+json"}
    structured = {"content-type": "application/cloudevents+json"}
    sent = {"accepted": 0, "duplicates": 0, "rejected": 0}
    with httpx.Client(base_url=url, timeout=30) as client:
        first_batch: list[dict[str, Any]] = []
        for start in range(0, 300, 50):
            # one order in ten in a currency reserve_stock refuses for good: a dead letter of the bake's own handler
            events = [cloud_event("com.example.order.placed", order(n, "JPY" if n % 10 == 0 else "EUR"))
                      for n in range(start, start + 50)]
            first_batch = first_batch or events
            answer = client.post("/events", json=events, headers=batch)
            assert answer.status_code == 202, answer.text
            sent["accepted"] += answer.json()["accepted"]
        # every cancellation fails audit_cancellation twice (a retry, then a dead letter); release_stock takes them
        cancellations = [cloud_event("com.example.order.cancelled", {"order_id": f"o-{n}", "reason": "test"})
                         for n in range(40)]
        answer = client.post("/events", json=cancellations, headers=batch)
        assert answer.status_code == 202, answer.text
        sent["accepted"] += answer.json()["accepted"]
        answer = client.post("/events", json=first_batch, headers=batch)  # sent again: all duplicates
        assert answer.json() == {"accepted": 0, "duplicates": 50}, answer.text
        sent["duplicates"] += 50
        refused = [
            (cloud_event("com.example.unknown", {}), structured, 422),
            (cloud_event("com.example.order.placed", {**order(1), "amount_cents": -1}), structured, 422),
            ("{not json", structured, 400),
            ("plain text", {"content-type": "text/plain"}, 415),
        ]
        for _ in range(5):
            for body, headers, status in refused:
                content = body if isinstance(body, str) else json.dumps(body)
                assert client.post("/events", content=content, headers=headers).status_code == status
                sent["rejected"] += 1
    return sent


def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    assert answer.status_code == 200, f"{promql}: {answer.text}"
    body = answer.json()
    assert body["status"] == "success", f"{promql}: {body}"
    return list(body["data"]["result"])


def exposed_names(metrics_text: str) -> set[str]:
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in metrics_text.splitlines() if line and line[0] != "#"}


def wait_for(what: str, check: Any, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.5)


@pytest.mark.slow
def test_a_real_prometheus_scraping_a_bake_under_load_answers_every_dashboard_query(bake_project, baked_python,
                                                                                    tmp_path):
    require("prometheus", "prometheus-blackbox-exporter")
    project = bake_project()
    inject_handler(project, "audit", FAILING_AUDIT_HANDLER)
    settings = {
        "SERVICE_BUS_URL": f"sqlite:///{tmp_path}/events.db",
        "SERVICE_LOG_LEVEL": "WARNING",
        "SERVICE_RETRY_BASE_SECONDS": "0.05",
        "SERVICE_RETRY_MAX_SECONDS": "0.1",
        "SERVICE_SHUTDOWN_DRAIN_SECONDS": "0",
        "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "2",
    }
    blackbox_port, prometheus_port = free_port(), free_port()
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    with ServiceProcess(project, baked_python, env=settings) as service:
        service.wait_ready()
        config, job = scrape_config_for(project, service.port, blackbox_port)
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        blackbox = ["prometheus-blackbox-exporter", f"--config.file={project / 'observability' / 'blackbox.yml'}",
                    f"--web.listen-address=127.0.0.1:{blackbox_port}"]
        server = ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"]
        with (started(blackbox, tmp_path / "blackbox.log", f"http://127.0.0.1:{blackbox_port}/-/healthy"),
              started(server, tmp_path / "prometheus.log", f"{prometheus}/-/ready")):
            # a few scrapes before the load, so every counter has samples from before it
            scrapes = f'count_over_time(up{{job="{job}", probe=""}}[1m]) >= 3'
            wait_for("three scrapes", lambda: query(prometheus, scrapes))
            sent = put_load(service.url)
            service.wait_idle(timeout=60)
            metrics_text = httpx.get(f"{service.url}/metrics", timeout=5).text
            processed = sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
                            if line.startswith("events_processed_total{"))
            # Prometheus has seen the end of the load, the probe and the dead letters' alert
            wait_for("the drained service in Prometheus", lambda: [
                sample["value"][1] for sample in query(prometheus, f'sum(events_processed_total{{job="{job}"}})')
            ] == [f"{processed:g}"] and query(prometheus, f'max(bus_pending_events{{job="{job}"}}) == 0'))
            ready = f'probe_success{{job="{job}", probe="readyz"}} == 1'
            wait_for("a readiness probe", lambda: query(prometheus, ready))
            wait_for("EventsDeadLettered active", lambda: any(
                alert["labels"]["alertname"] == "EventsDeadLettered"
                for alert in httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]))

            print(f"\nload: {sent}; Prometheus {prometheus} scraping {service.url} every 1 s as job {job!r}")
            empty = []
            for title, ref_id, expr in panel_targets():
                promql = expr.replace("$job", job)
                for variable, value in GRAFANA_VARIABLES.items():
                    promql = promql.replace(variable, value)
                result = query(prometheus, promql)
                values = ", ".join(f"{float(sample['value'][1]):.4g}" for sample in result[:6])
                print(f"  {len(result):2d} series  {title} [{ref_id}]: {values}\n             {promql}")
                if not result:
                    empty.append(f"{title} [{ref_id}]: {promql}")
            for variable in dashboard()["templating"]["list"]:
                found = re.fullmatch(r"label_values\((.*), (\w+)\)", variable.get("query", ""))
                if found:
                    selector = found.group(1).replace("$job", job)
                    answer = httpx.get(f"{prometheus}/api/v1/label/{found.group(2)}/values",
                                       params={"match[]": selector}, timeout=10).json()["data"]
                    print(f"  variable {variable['name']}: {answer}")
                    assert answer, f"the dashboard's {variable['name']} variable finds nothing"
            rule_health = [(rule["name"], rule["health"], rule.get("lastError", ""))
                           for group in httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
                           for rule in group["rules"]]
            active = {alert["labels"]["alertname"]: alert["state"]
                      for alert in httpx.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]}
            print(f"  rules: {rule_health}\n  active alerts: {active}")

    assert empty == []
    assert [rule for rule in rule_health if rule[1] != "ok"] == []
    assert "EventsServiceNotReady" not in active
    # every metric the pack reads is one the service exposes: a renamed metric fails here
    used = {name for _, _, expr in panel_targets() for name in metric_names(expr)}
    used |= {name for rule in rules() for name in metric_names(rule["expr"])}
    assert used - NOT_FROM_THE_SERVICE - exposed_names(metrics_text) == set()
    # and every metric family the service exposes is on the dashboard
    families = {line.split()[2] for line in metrics_text.splitlines() if line.startswith("# TYPE ")}
    on_dashboard = {name for _, _, expr in panel_targets() for name in metric_names(expr)}
    assert {family for family in families if not any(name.startswith(family) for name in on_dashboard)} == set()
