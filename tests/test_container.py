"""A bake's container image, built and run for real: `make image` (the real docker CLI against podman's socket)
builds it with no network from the wheelhouse on a local base image (no registry is reachable here); it runs
non-root on a read-only root with its store on a volume, stops on SIGTERM with exit code 0, and what one container
accepted, a new container on that volume handles: nothing lost; compose.yaml brings it up read-only once.

Needs root, podman with runc and the docker CLI (`.ci/setup-container.sh`), podman-compose (a test requirement).
Everything made here is named `ces-test-<run>-...` and removed by name or ID, also when a test fails; the base
image is kept (it is the cache: podman holds it across runs).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hosts.network import CACHE_DIR as HOST_CACHE_DIR
from hosts.network import CACHED_ROOT, ensure_cached_root
from support import bake, free_port

pytestmark = pytest.mark.slow

SLUG = "event-service"
STORE_DIR = f"/var/lib/{SLUG}"
PLACED = "com.example.order.placed"
HANDLERS_PER_ORDER = 2  # reserve_stock and send_order_confirmation in a default bake
# What podman needs on this machine: runc (Debian's crun fails on its cgroups), no default ulimits (setrlimit is
# refused here), cgroupfs (no systemd as PID 1).
CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n'
BASE_REPOSITORY = "localhost/ces-test-base"
# the user the Dockerfile runs the service as
SERVICE_UID = "10001"
COMMAND_TIMEOUT = 300
PODMAN_COMPOSE = Path(sys.executable).with_name("podman-compose")
READY_TIMEOUT = 90
STOP_TIMEOUT = 30


class Engine:
    """podman set up for this machine, its Docker-API socket for the docker CLI, and everything made through them
    (removed at teardown by name or ID)."""

    def __init__(self, workdir: Path) -> None:
        self.run_id = f"ces-test-{uuid.uuid4().hex[:8]}"
        conf = workdir / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.socket = workdir / "podman.sock"
        # on top of the environment as it is at each call (PIP_FIND_LINKS is set after this fixture is made)
        self.overrides = {"CONTAINERS_CONF": str(conf), "DOCKER_HOST": f"unix://{self.socket}",
                          "DOCKER_BUILDKIT": "0"}
        self.containers: list[str] = []
        self.volumes: list[str] = []
        self.images: list[str] = []
        self.compose_projects: list[str] = []
        self._service_log = (workdir / "podman-service.log").open("w")
        self.service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.environment(), stdout=self._service_log, stderr=subprocess.STDOUT,
        )

    def environment(self, **env: str) -> dict[str, str]:
        return {**os.environ, **self.overrides, **env}

    def name(self, what: str) -> str:
        return f"{self.run_id}-{what}"

    def run(self, *argv: str, check: bool = True, timeout: float = COMMAND_TIMEOUT,
            **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, env=self.environment(**env), capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
        return result

    def wait_for_socket(self) -> None:
        deadline = time.monotonic() + 30
        while self.run("docker", "version", check=False, timeout=30).returncode != 0:
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("podman's Docker-API socket did not answer")
            time.sleep(0.2)

    def close(self) -> None:
        for project in self.compose_projects:  # what `down` left, by the label podman-compose puts on what it makes
            label = f"label=io.podman.compose.project={project}"
            for listing, removal in ((("ps", "-a"), ("rm", "--force")), (("volume", "ls"), ("volume", "rm", "--force")),
                                     (("network", "ls"), ("network", "rm", "--force"))):
                found = self.run("podman", *listing, "-q", "--filter", label, check=False).stdout.split()
                if found:
                    self.run("podman", *removal, *found, check=False)
            self.run("podman", "pod", "rm", "--force", "--ignore", f"pod_{project}", check=False)
        for container in self.containers:
            self.run("podman", "rm", "--force", "--time", "0", container, check=False)
        for volume in self.volumes:
            self.run("podman", "volume", "rm", "--force", volume, check=False)
        for image in reversed(self.images):  # removing an image removes the untagged layers its build left
            self.run("podman", "rmi", image, check=False)
        if self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(15)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(5)
        self._service_log.close()
        self.socket.unlink(missing_ok=True)


def cannot_run_containers_reason() -> str | None:
    if os.geteuid() != 0:
        return "the container tests run rootful podman: they need root"
    for tool in ("podman", "runc", "docker", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: run .ci/setup-container.sh"
    if not PODMAN_COMPOSE.exists():
        return "podman-compose is not installed: pip install -r tests/requirements/template.txt"
    return None


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    reason = cannot_run_containers_reason()
    if reason is not None:
        pytest.skip(reason)
    running = Engine(tmp_path_factory.mktemp("engine"))
    try:
        running.wait_for_socket()
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def base_image(engine: Engine) -> str:
    """A Debian bookworm image with python3 and venv, imported once from the Ansible test hosts' cached root and
    kept by podman for later runs (named by the root's revision, so a rebuilt root makes a new one)."""
    root = ensure_cached_root()
    revision = (root / ".ces-root-revision").read_text().strip()
    image = f"{BASE_REPOSITORY}:bookworm-r{revision}"
    # the root's own lock: no rebuild of it while it is read, and one import at a time on this machine
    with (HOST_CACHE_DIR / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if engine.run("podman", "image", "exists", image, check=False).returncode != 0:
            tar = subprocess.Popen(["tar", "-C", str(CACHED_ROOT), "-c", "."], stdout=subprocess.PIPE)
            imported = subprocess.run(["podman", "import", "-", image], stdin=tar.stdout, env=engine.environment(),
                                      capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
            assert tar.stdout is not None
            tar.stdout.close()
            assert tar.wait(60) == 0 and imported.returncode == 0, imported.stderr
    return image


@pytest.fixture(scope="module")
def built(engine: Engine, base_image: str, runtime_wheels: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A default bake (a git repository, as in a pipeline) and the image `make image` built of it: (project, image
    reference, release version). The runtime's wheel comes from `runtime_wheels` (PIP_FIND_LINKS), as on a runner.
    """
    project = bake(tmp_path_factory.mktemp("container-bake"))
    git = ("git", "-c", "user.name=ces", "-c", "user.email=ces@example.invalid")
    for command in (("git", "init", "-q"), ("git", "add", "-A"), (*git, "commit", "-q", "-m", "bake")):
        subprocess.run(command, cwd=project, check=True, capture_output=True, timeout=60)
    tox = shutil.which("tox")
    assert tox, "tox is a test requirement"
    registry = f"localhost/{engine.run_id}"
    make = ("make", "-C", str(project), f"TOX={tox}", f"PYTHON={sys.executable}", f"REGISTRY={registry}",
            f"BASE_IMAGE={base_image}")
    version = engine.run(*make, "--no-print-directory", "print-VERSION").stdout.strip()
    tag = engine.run(*make, "--no-print-directory", "print-IMAGE_TAG").stdout.strip()
    image = f"{registry}/{SLUG}:{tag}"
    engine.images.append(image)
    engine.run(*make, "image", timeout=900)
    engine.images[-1] = engine.run("podman", "image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
    return project, image, version


def test_make_image_builds_without_network_from_the_wheelhouse_alone(
        engine: Engine, base_image: str, built: tuple[Path, str, str], tmp_path: Path) -> None:
    project, image, version = built
    assert "+g" in version  # the release version of a commit, as `make build` stamps it
    # podman's own inspect: the Docker API's leaves the healthcheck out
    inspected = json.loads(engine.run("podman", "image", "inspect", image).stdout)[0]
    assert inspected["Config"]["User"] == SERVICE_UID
    assert inspected["Healthcheck"]["Test"][0] == "CMD"
    assert STORE_DIR in inspected["Config"]["Volumes"]
    wheelhouse = project / "dist" / "image"
    assert (wheelhouse / f"{SLUG.replace('-', '_')}-{version}-py3-none-any.whl").is_file()

    # the same build with one dependency's wheel missing fails on it: nothing else is fetched
    context = tmp_path / "context"
    shutil.copytree(project / "scripts", context / "scripts")
    shutil.copytree(wheelhouse, context / "dist" / "image", ignore=shutil.ignore_patterns("msgspec-*"))
    for name in ("Dockerfile", ".dockerignore"):
        shutil.copy2(project / name, context / name)
    failed = engine.run("docker", "build", "--network=none", "--force-rm", "--build-arg", f"BASE_IMAGE={base_image}",
                        "--build-arg", f"VERSION={version}", str(context), check=False)
    # the layers it built before failing are removed with the others at teardown
    engine.images.extend(re.findall(r"^\s*-+> ([0-9a-f]{11,64})\s*$", failed.stdout, re.MULTILINE))
    assert failed.returncode != 0
    assert "No matching distribution found for msgspec" in failed.stdout + failed.stderr


def test_the_image_runs_non_root_on_a_read_only_root_and_new_containers_on_its_volume_lose_nothing(
        engine: Engine, built: tuple[Path, str, str]) -> None:
    _, image, version = built
    volume = engine.name("store")
    engine.volumes.append(volume)
    engine.run("docker", "volume", "create", volume)

    # the image as shipped: its handlers run, SIGTERM stops it cleanly
    first = start_service(engine, image, volume, "first")
    # podman exec, not docker exec: an exec session through the Docker API keeps a conmon process for 5 minutes
    assert engine.run("podman", "exec", first.name, "id", "-u").stdout.strip() == SERVICE_UID
    written = engine.run("podman", "exec", first.name, "touch", "/opt/venv/probe", check=False)
    assert written.returncode != 0 and "Read-only file system" in written.stderr
    assert httpx.get(f"{first.url}/readyz", timeout=5).json()["version"] == version
    handled = order_events("handled", 50)
    waited = post(first, handled, prefer="wait=20")
    assert waited.status_code == 200, waited.text
    assert waited.json()["accepted"] == len(handled)
    assert len([r for r in waited.json()["results"] if r["error"] is None]) == HANDLERS_PER_ORDER * len(handled)
    assert stop(engine, first.name) == 0, engine.run("docker", "logs", first.name, check=False).stderr[-3000:]

    # ingest only (`serve --no-workers`): every event it accepts is still pending when SIGTERM comes
    second = start_service(engine, image, volume, "second", "serve", "--host", "0.0.0.0", "--port", "8000",
                           "--no-workers")
    pending = order_events("pending", 500)
    accepted = post(second, pending)
    assert accepted.status_code == 202 and accepted.json()["accepted"] == len(pending), accepted.text
    assert metric(second, "bus_pending_events") == HANDLERS_PER_ORDER * len(pending)
    assert stop(engine, second.name) == 0

    # a new container of the image as shipped, on the same volume, handles them all; the store forgot nothing
    third = start_service(engine, image, volume, "third")
    wait_until_idle(third)
    assert metric(third, "events_processed_total") == HANDLERS_PER_ORDER * len(pending)
    assert metric(third, "events_dead_lettered_total") == 0
    for events in (handled, pending):  # each one a duplicate now
        assert post(third, events).json() == {"accepted": 0, "duplicates": len(events)}
    assert stop(engine, third.name) == 0

    # the store on the volume: every event, and no open or dead-lettered delivery (finished ones are deleted)
    mountpoint = engine.run("podman", "volume", "inspect", "--format", "{{.Mountpoint}}", volume).stdout.strip()
    with sqlite3.connect(Path(mountpoint) / "events.db") as store:
        assert store.execute("SELECT count(*) FROM events").fetchone()[0] == len(handled) + len(pending)
        assert store.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_compose_brings_the_service_up_with_a_read_only_root_and_down_again(
        engine: Engine, built: tuple[Path, str, str]) -> None:
    project, image, version = built
    compose_project = engine.name("compose").replace("-", "")
    engine.compose_projects.append(compose_project)
    port = free_port()
    compose = (str(PODMAN_COMPOSE), "-p", compose_project, "-f", str(project / "compose.yaml"))
    env = {"SERVICE_IMAGE": image, "SERVICE_PORT": str(port)}
    try:
        engine.run(*compose, "up", "-d", "--no-build", **env)
        container = engine.run("podman", "ps", "-q", "--filter", f"label=io.podman.compose.project={compose_project}"
                               ).stdout.split()
        assert len(container) == 1
        host_config = json.loads(engine.run("podman", "inspect", container[0]).stdout)[0]["HostConfig"]
        assert host_config["ReadonlyRootfs"] is True
        assert [binding["HostIp"] for binding in host_config["PortBindings"]["8000/tcp"]] == ["127.0.0.1"]
        ready = wait_ready(f"http://127.0.0.1:{port}")
        assert ready.json()["version"] == version
    finally:
        down = engine.run(*compose, "down", "--volumes", "--timeout", str(STOP_TIMEOUT), check=False, **env)
    assert down.returncode == 0, down.stderr[-3000:]
    left = engine.run("podman", "ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={compose_project}")
    assert left.stdout.split() == []


class Service:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"


def start_service(engine: Engine, image: str, volume: str, which: str, *command: str) -> Service:
    """`docker run` as compose.yaml runs it: read-only root, /tmp in memory, no capabilities, the store on the
    volume, the port on 127.0.0.1 only (`command` replaces the image's CMD); returns once the image's HEALTHCHECK
    passes."""
    service = Service(engine.name(which), free_port())
    engine.containers.append(service.name)
    engine.run("docker", "run", "--detach", "--name", service.name, "--read-only", "--tmpfs", "/tmp",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--volume", f"{volume}:{STORE_DIR}",
               "--publish", f"127.0.0.1:{service.url.rsplit(':', 1)[1]}:8000", image, *command)
    # no systemd here to run the checks on their interval: run the HEALTHCHECK on demand until it passes
    deadline = time.monotonic() + READY_TIMEOUT
    while engine.run("podman", "healthcheck", "run", service.name, check=False, timeout=30).returncode != 0:
        if time.monotonic() > deadline:
            logs = engine.run("docker", "logs", service.name, check=False)
            raise AssertionError(f"{service.name} not healthy after {READY_TIMEOUT}s:\n{logs.stderr[-3000:]}")
        time.sleep(1)
    health = engine.run("podman", "inspect", "--format", "{{.State.Health.Status}}", service.name).stdout.strip()
    assert health == "healthy"
    return service


def stop(engine: Engine, container: str) -> int:
    """`docker stop`: SIGTERM, then SIGKILL after STOP_TIMEOUT; the container's exit code."""
    engine.run("docker", "stop", "--time", str(STOP_TIMEOUT), container, timeout=STOP_TIMEOUT + 60)
    return int(engine.run("docker", "inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip())


def wait_ready(url: str) -> httpx.Response:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            answer = httpx.get(f"{url}/readyz", timeout=2)
            if answer.status_code == 200:
                return answer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/readyz did not answer 200 within {READY_TIMEOUT}s")
        time.sleep(0.5)


def metric(service: Service, name: str) -> float:
    """The sum of a metric's series on the service's /metrics."""
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((f"{name} ", f"{name}{{")))


def wait_until_idle(service: Service, timeout: float = 60) -> None:
    """Until no delivery is pending: /metrics reads the count from the store when scraped."""
    deadline = time.monotonic() + timeout
    while True:
        pending = metric(service, "bus_pending_events")
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending:.0f} deliveries still pending after {timeout}s")
        time.sleep(0.5)


def order_events(prefix: str, count: int) -> list[dict[str, object]]:
    return [{"specversion": "1.0", "id": f"{prefix}-{n}", "source": "/tests/container", "type": PLACED,
             "datacontenttype": "application/json",
             "data": {"order_id": f"o-{n}", "customer_id": "c-1", "amount_cents": 990, "currency": "EUR"}}
            for n in range(count)]


def post(service: Service, events: list[dict[str, object]], prefer: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/cloudevents-batch+json", **({"prefer": prefer} if prefer else {})}
    return httpx.post(f"{service.url}/events", content=json.dumps(events), headers=headers, timeout=60)
