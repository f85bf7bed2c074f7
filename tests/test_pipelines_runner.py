"""The pipelines run the way a runner runs them: every job's `run:` steps and every Jenkins stage's `sh` steps,
in order, each job in a fresh clone of a bake, with the engines' own actions standing in by their documented
effect (tests/test_pipelines_runner_engine.py is the runner; docs/pipelines.md lists what stands in for what).

One delivery story on one bake, in order (the tests share it, module scope, and each checks where it starts):
  1. cd.yml on main builds the wheel once, uploads it as `wheel-<v>`, pushes the image built in the same job and
     opens the staging promotion pull request (no test hosts needed);
  2. merging it runs deploy-staging.yml: the wheel of that run reaches staging (a systemd test host), the load gate
     passes, and the production promotion is proposed; 3. merging that deploys production;
  4. drift.yml passes on git and fails, visibly, on a host that no longer runs what git says;
  5. a Jenkins build of a new commit: Checks, Build (stash), the promotion branches merged at its two inputs,
     both deploys from the stash; 6. a Jenkins timer build checks drift with the wheel archived by build 5;
  7. a staging deploy that fails its load gate is rolled back and a pull request proposes the previous release.
Then a small repository that is not a bake adopts the pipelines by docs/pipelines.md, and the runner catches the
missing-wheel bug: without the upload (or without the download) the deploy job fails.

Cost on this 2-core machine (load 1-2, 2026-12-07): the module 547 s wall, of which the two CI halves (cd.yml's
checks, the Jenkins build's Checks and Build) are most: ~190 and ~240 s of CPU; each deploy run 20-50 s; the host
boot ~25 s. Each step of the story prints its wall and CPU seconds (pytest -s).
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hosts.network import HostNetwork, cannot_create_hosts_reason
from hosts.probes import readiness
from hosts.project import AUTH_TOKEN, VAULT_PASSWORD, ansible_bin_dir
from support import REPO_ROOT, bake
from test_pipelines_runner_engine import GitHub, Jenkins, Remote, Run, git

pytestmark = pytest.mark.slow

SLUG = "event-service"
PORT = 8000
HOSTS = {"staging": ("ces-stg1", "10.231.0.30"), "production": ("ces-prd1", "10.231.0.31")}
FIRST_ADDRESS = 30
# Short and forgiving: the gate's own thresholds are tested in tests/test_loadtests_gate.py; here it must run for
# real against staging and pass on a loaded 2-core machine.
GATE_ARGS = "--run-time 6s --users 4 --spawn-rate 4 --max-p95-ms 5000 --max-p99-ms 10000"
FAILING_GATE_ARGS = GATE_ARGS + " --min-requests-per-second 100000"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(label: str, started_cpu: float, *runs: object) -> None:
    wall = sum(getattr(run, "seconds", 0.0) for run in runs)
    print(f"\n[runner] {label}: {wall:.0f} s wall, {cpu_seconds() - started_cpu:.0f} s CPU of child processes")


def runner_env() -> dict[str, str]:
    """The runner machine's environment: the index stand-in (PIP_FIND_LINKS), Ansible and Locust installed, as the
    hosted runner images and the Jenkins agents the docs describe have them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "VIRTUAL_ENV", "TOX"))}
    tools = ansible_bin_dir()
    env["PATH"] = os.pathsep.join([str(tools), env["PATH"]])
    env["LOCUST"] = str(shutil.which("locust", path=env["PATH"]) or tools / "locust")
    env["LOADTEST_ARGS"] = GATE_ARGS
    env.update({"ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def write_environment(project: Path, environment: str, address: str) -> None:
    """The team's inventory of `environment`: one test host, the vault encrypted as the docs say."""
    inventory = project / "ansible" / "inventories" / environment
    group_vars = inventory / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    (inventory / "hosts.yml").write_text(
        f"---\nall:\n  children:\n    service_hosts:\n      hosts:\n        {environment}-1:\n"
        f"          ansible_host: {address}\n"
    )
    (group_vars / "main.yml").write_text(textwrap.dedent(f"""\
        ---
        deploy_environment: {environment}
        ansible_user: root
        ansible_python_interpreter: /usr/bin/python3
        service_env: production
        service_auth_tokens: "{{{{ vault_service_auth_tokens }}}}"
        service_health_timeout_seconds: 30
        """))
    vault = group_vars / "vault.yml"
    vault.write_text(f"---\nvault_service_auth_tokens:\n  - {AUTH_TOKEN}\n")
    password = project.parent / "vault-password"
    password.write_text(VAULT_PASSWORD + "\n")
    subprocess.run([str(ansible_bin_dir() / "ansible-vault"), "encrypt", "--vault-password-file", str(password),
                    str(vault)], check=True, capture_output=True, timeout=60)


@dataclass
class Delivery:
    root: Path
    remote: Remote
    github: GitHub
    jenkins: Jenkins
    key: Path
    first_sha: str


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory, baked_python: Path, runtime_wheels: Path) -> Delivery:
    root = tmp_path_factory.mktemp("delivery")
    project = bake(root / "team", ci="both")
    for environment, (_, address) in HOSTS.items():
        write_environment(project, environment, address)
    remote = Remote.of_project(project, root / "origin.git", "the team's service, with its two environments")
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    env = runner_env()
    github = GitHub(
        root / "github", remote, baked_python, env,
        secrets={"ANSIBLE_SSH_PRIVATE_KEY": key.read_text(), "ANSIBLE_VAULT_PASSWORD": VAULT_PASSWORD,
                 "LOADTEST_AUTH_TOKEN": AUTH_TOKEN},
        variables={"STAGING_URL": f"http://{HOSTS['staging'][1]}:{PORT}",
                   "PRODUCTION_URL": f"http://{HOSTS['production'][1]}:{PORT}"},
    )
    known_hosts = root / "agent-known-hosts"
    known_hosts.write_text("")
    jenkins = Jenkins(
        root / "jenkins", remote, baked_python,
        env | {"ANSIBLE_SSH_COMMON_ARGS": f"-o UserKnownHostsFile={known_hosts}"},
        credentials={
            "ansible-ssh-key": {"kind": "ssh", "content": key.read_text()},
            "ansible-vault-password": {"kind": "file", "content": VAULT_PASSWORD + "\n"},
            "git-push": {"kind": "usernamePassword", "username": "jenkins", "password": "git-token"},
            "container-registry": {"kind": "usernamePassword", "username": "ci", "password": "registry-token"},
            "loadtest-auth-token": {"kind": "string", "content": AUTH_TOKEN},
        },
    )
    return Delivery(root, remote, github, jenkins, key, remote.head())


@pytest.fixture(scope="module")
def hosts(delivery: Delivery):
    """Staging and production, one systemd test host each; their host keys pinned the way the docs say."""
    reason = cannot_create_hosts_reason()
    if reason is not None:
        pytest.skip(reason)
    names = [HOSTS["staging"][0], HOSTS["production"][0]]
    with HostNetwork(names, delivery.key, first_address=FIRST_ADDRESS) as network:
        addresses = [host.address for host in network.hosts]
        assert addresses == [HOSTS["staging"][1], HOSTS["production"][1]]
        scanned = subprocess.run(["ssh-keyscan", "-T", "10", *addresses], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
        delivery.github.secrets["SSH_KNOWN_HOSTS"] = scanned
        (delivery.root / "agent-known-hosts").write_text(scanned)
        yield network


def version_on(environment: str) -> object:
    return readiness(HOSTS[environment][1], PORT)[1].get("version")


def environment_file(remote: Remote, commit: str, environment: str) -> dict[str, object]:
    return yaml.safe_load(remote.read(commit, f"deploy/environments/{environment}.yml"))


def only_run(runs: list[Run], workflow: str) -> Run:
    assert [run.workflow for run in runs] == [workflow], [run.workflow for run in runs]
    return runs[0]


@pytest.fixture(scope="module")
def cd_run(delivery: Delivery) -> Run:
    started = cpu_seconds()
    run = delivery.github.run("cd.yml", "push", delivery.first_sha)
    report("cd.yml (checks, image, staging promotion)", started, run)
    return run


# ------------------------------------------------------------------------------------------ 1. the CI half


def test_cd_builds_the_wheel_once_and_proposes_exactly_it_for_staging(delivery, cd_run):
    assert cd_run.conclusion == "success", cd_run.digest()
    version = cd_run.job("checks").outputs["version"]
    assert re.fullmatch(r"0\.1\.0\+g[0-9a-f]{12}", version)
    assert cd_run.job("checks").outputs["artifact-run"] == str(cd_run.run_id)
    # Each job started from its own clean checkout: the build job's dist/ is the only place the wheel was made.
    wheels = list(delivery.github.artifact(cd_run.run_id, f"wheel-{version}").iterdir())
    assert [w.name for w in wheels] == [f"event_service-{version}-py3-none-any.whl"]
    with zipfile.ZipFile(wheels[0]) as wheel:
        metadata = wheel.read(f"event_service-{version}.dist-info/METADATA").decode()
    assert f"\nVersion: {version}\n" in metadata
    # The image pushed is the one the build job built (loaded from its artifact), not a second build.
    (pushed,) = delivery.github.pushed_images()
    assert pushed["image"] == f"ghcr.io/example/{SLUG}:{version.replace('+', '-')}"
    assert "/checks-build-" in pushed["built_in"]
    assert any("template update check" in note for note in cd_run.job("checks/template").annotations)
    # GitOps by pull request: main is untouched, the branch changes the staging file only.
    assert delivery.remote.head() == delivery.first_sha
    (pull,) = delivery.github.pull_requests()
    assert (pull["head"], pull["base"], pull["state"]) == (f"promote/staging/{version}", "main", "open")
    assert delivery.remote.proposed(pull["head"]) == ["deploy/environments/staging.yml"]
    assert environment_file(delivery.remote, pull["head"], "staging") == {
        "service_version": version, "artifact_run": str(cd_run.run_id)}
    assert f"actions/runs/{cd_run.run_id}" in pull["body"]


# --------------------------------------------------------------------------------- 2-4. deploys and drift


@pytest.mark.hosts
def test_merging_the_staging_promotion_deploys_that_wheel_and_proposes_production(delivery, cd_run, hosts):
    version = cd_run.job("checks").outputs["version"]
    started = cpu_seconds()
    before, after = delivery.github.merge(1)
    run = only_run(delivery.github.on_push(before, after), "deploy-staging.yml")
    report("deploy-staging.yml (first deploy, gate, production promotion)", started, run)

    assert run.conclusion == "success", run.digest()
    deploy = run.job("deploy/deploy")
    assert f"downloaded wheel-{version} of run {cd_run.run_id}" in deploy.step("fetch the wheel of the release").output
    assert [s.outcome for s in deploy.steps if s.name.startswith("make ")] == ["success"] * 3 + ["skipped"]
    assert (run.run_id, "deploy/deploy", "staging") in delivery.github.approvals
    assert version_on("staging") == version
    assert run.job("rollback").conclusion == "skipped"
    production = delivery.github.pull_requests()[-1]
    assert production["head"] == f"promote/production/{version}"
    assert environment_file(delivery.remote, production["head"], "production") == {
        "service_version": version, "artifact_run": str(cd_run.run_id)}


@pytest.mark.hosts
def test_merging_the_production_promotion_deploys_production(delivery, cd_run, hosts):
    version = cd_run.job("checks").outputs["version"]
    assert version_on("staging") == version, "starts where the staging deploy left off"
    started = cpu_seconds()
    before, after = delivery.github.merge(2)
    run = only_run(delivery.github.on_push(before, after), "deploy-production.yml")
    report("deploy-production.yml (first deploy)", started, run)

    assert run.conclusion == "success", run.digest()
    assert (run.run_id, "deploy/deploy", "production") in delivery.github.approvals
    assert version_on("production") == version


@pytest.mark.hosts
def test_drift_check_passes_where_hosts_match_git_and_fails_visibly_where_they_do_not(delivery, cd_run, hosts):
    version = cd_run.job("checks").outputs["version"]
    assert version_on("production") == version
    production = next(h for h in hosts.hosts if h.name == HOSTS["production"][0])
    hosts.ssh(production, f"systemctl stop {SLUG}")
    started = cpu_seconds()
    run = delivery.github.run("drift.yml", "schedule", delivery.remote.head())
    report("drift.yml (both environments)", started, run)

    assert run.job("staging").conclusion == "success", run.digest()
    assert "drift check: no drift" in run.job("staging/drift").step("make drift").output
    assert run.job("production").conclusion == "failure", run.digest()
    drifted = run.job("production/drift")
    assert drifted.step("fetch the wheel of the release").outcome == "success"
    assert any("drift in production" in a for a in drifted.annotations), drifted.annotations
    assert "production: drift check failed" in drifted.summary


# ------------------------------------------------------------------------------------------- 5-6. Jenkins


@pytest.mark.hosts
def test_a_jenkins_build_deploys_a_new_commit_from_its_stash_after_each_promotion_is_merged(delivery, cd_run, hosts):
    def change_a_handler(work: Path) -> None:
        handler = next((work / "src").glob("*/handlers/orders.py"))
        text = handler.read_text()
        assert '"GBP"})' in text
        handler.write_text(text.replace('"GBP"})', '"GBP", "CHF"})'))

    _, commit = delivery.remote.commit(delivery.root, change_a_handler, "orders: a change of the team's code")
    reviews: list[str] = []

    def merge_the_promotion(stage: str, message: str) -> str:
        environment = "staging" if stage == "Review staging" else "production"
        branch = re.search(r"promote/[^\s,]+", message).group(0)
        assert branch.startswith(f"promote/{environment}/"), message
        assert delivery.remote.proposed(branch) == [f"deploy/environments/{environment}.yml"]
        delivery.remote.merge(delivery.root, branch)
        reviews.append(stage)
        return "release-manager"

    started = cpu_seconds()
    build = delivery.jenkins.build("push", commit, overrides={"stagingUrl": f"http://{HOSTS['staging'][1]}:{PORT}"},
                                   on_input=merge_the_promotion)
    report("Jenkins build of main (checks, build, both promotions and deploys)", started, build)

    assert build.result == "SUCCESS", build.digest()
    assert reviews == ["Review staging", "Approve production"]
    assert [name for name, s in build.stages.items() if s.result == "SKIPPED"] == ["Drift"]
    assert build.stages["Checks / Template"].result == "SUCCESS"
    version = build.env["SERVICE_VERSION"]
    assert version != cd_run.job("checks").outputs["version"]
    assert version_on("staging") == version_on("production") == version
    main = delivery.remote.head()
    for environment in ("staging", "production"):
        assert environment_file(delivery.remote, main, environment) == {
            "service_version": version, "artifact_run": str(build.number)}
    archived = sorted(p.name for p in delivery.jenkins.archive(build.number).rglob("*.whl"))
    assert archived == [f"event_service-{version}-py3-none-any.whl"]


@pytest.mark.hosts
def test_a_jenkins_timer_build_checks_drift_with_the_wheel_its_promotion_named(delivery, hosts):
    deployed = next(b for b in reversed(delivery.jenkins.builds) if b.kind == "push")
    started = cpu_seconds()
    build = delivery.jenkins.build("schedule", delivery.remote.head())
    report("Jenkins timer build (drift of both environments)", started, build)

    assert build.result == "SUCCESS", build.digest()
    ran = [name for name, stage in build.stages.items() if stage.result != "SKIPPED"]
    assert ran == ["Drift", "Drift / Drift staging", "Drift / Drift production"]
    for environment in ("staging", "production"):
        log = build.stages[f"Drift / Drift {environment}"].log
        assert f"from build {deployed.number}" in log and "drift check: no drift" in log


# -------------------------------------------------------------------------------------- 7. a failed deploy


@pytest.mark.hosts
def test_a_staging_deploy_that_fails_its_gate_is_rolled_back_and_git_gets_a_pull_request_back(delivery, cd_run,
                                                                                               hosts):
    running = version_on("staging")
    wanted = cd_run.job("checks").outputs["version"]
    assert running not in (None, wanted), "starts from the Jenkins release, with the GitHub one before it"

    def promote_the_first_release_again(work: Path) -> None:
        env_file = work / "deploy" / "environments" / "staging.yml"
        text = re.sub(r"(?m)^service_version:.*$", f'service_version: "{wanted}"', env_file.read_text())
        env_file.write_text(re.sub(r"(?m)^artifact_run:.*$", f'artifact_run: "{cd_run.run_id}"', text))

    before, after = delivery.remote.commit(delivery.root, promote_the_first_release_again,
                                           f"deploy: promote {wanted} to staging")
    delivery.github.env["LOADTEST_ARGS"] = FAILING_GATE_ARGS
    started = cpu_seconds()
    try:
        run = only_run(delivery.github.on_push(before, after), "deploy-staging.yml")
    finally:
        delivery.github.env["LOADTEST_ARGS"] = GATE_ARGS
    report("deploy-staging.yml (failed gate, rollback, pull request back)", started, run)

    deploy = run.job("deploy/deploy")
    assert deploy.conclusion == "failure", run.digest()
    assert [(s.name, s.outcome) for s in deploy.steps if s.name.startswith("make ")] == [
        ("make deploy", "success"), ("make verify", "success"), ("make loadtest", "failure"),
        ("make rollback", "success")]
    assert any("deploy failed" in a for a in deploy.annotations)
    assert version_on("staging") == running
    assert run.job("production").conclusion == "skipped"
    assert run.job("rollback").conclusion == "success", run.digest()
    back = delivery.github.pull_requests()[-1]
    assert back["head"] == f"rollback/staging/{wanted}" and back["title"].startswith("deploy: roll staging back")
    assert environment_file(delivery.remote, back["head"], "staging") == environment_file(
        delivery.remote, before, "staging")


# ------------------------------------------------------------------- a repository that is not a bake


TINY_FILES = {
    "pyproject.toml": """\
        [project]
        name = "tiny-orders"
        version = "0.3.0"
        requires-python = ">=3.11"
        """,
    ".gitignore": ".venv/\ndist/\nreports/\n",
    "src/tiny_orders/__init__.py": '"""A service that was never baked."""\n\nANSWER = 42\n',
    "tests/test_tiny.py": """\
        import unittest

        import tiny_orders


        class TinyTest(unittest.TestCase):
            def test_answer(self):
                self.assertEqual(tiny_orders.ANSWER, 42)
        """,
    "tools/build_wheel.py": '''\
        """Writes dist/tiny_orders-<version>-py3-none-any.whl by hand: no build backend, no index."""
        import base64, hashlib, sys, zipfile
        from pathlib import Path

        version, outdir = sys.argv[1], Path(sys.argv[2])
        outdir.mkdir(parents=True, exist_ok=True)
        info = f"tiny_orders-{version}.dist-info"
        files = {
            "tiny_orders/__init__.py": Path("src/tiny_orders/__init__.py").read_bytes(),
            f"{info}/METADATA": f"Metadata-Version: 2.1\\nName: tiny-orders\\nVersion: {version}\\n".encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        }
        record = [f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                  f"{len(data)}" for name, data in files.items()] + [f"{info}/RECORD,,"]
        with zipfile.ZipFile(outdir / f"tiny_orders-{version}-py3-none-any.whl", "w") as wheel:
            for name, data in files.items():
                wheel.writestr(name, data)
            wheel.writestr(f"{info}/RECORD", "\\n".join(record) + "\\n")
        ''',
    "Dockerfile": "FROM python:3.11-slim\nCOPY dist /dist\n",
    "Makefile": """\
        # The contract of docs/pipelines.md ("Adopting the pipelines"), for a service that is not a bake.
        IMAGE := ghcr.io/example/tiny-orders
        BASE_VERSION := $(shell sed -n 's/^version = "\\(.*\\)"$$/\\1/p' pyproject.toml)
        COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
        VERSION ?= $(BASE_VERSION)$(if $(COMMIT),+g$(COMMIT))
        IMAGE_TAG = $(subst +,-,$(VERSION))
        .PHONY: install lint type test build image image-push print-%

        install:
        \tpython3 -m venv --without-pip .venv
        lint:
        \t.venv/bin/python -m compileall -q src tests
        type:
        \tPYTHONPATH=src .venv/bin/python -W error -c "import tiny_orders"
        test:
        \tmkdir -p reports
        \tPYTHONPATH=src .venv/bin/python -m unittest discover -s tests
        \tprintf '<testsuite name="tiny" tests="1"/>\\n' > reports/junit.xml
        build:
        \trm -rf dist
        \t.venv/bin/python tools/build_wheel.py $(VERSION) dist
        image:
        \tdocker build --tag $(IMAGE):$(IMAGE_TAG) .
        image-push: image
        \tdocker push $(IMAGE):$(IMAGE_TAG)
        print-%:
        \t@echo $($*)

        include $(wildcard ansible/*.mk)
        """,
    "deploy/service.yml": "---\nservice_name: tiny-orders\nservice_image: ghcr.io/example/tiny-orders\n"
                          "service_event_bus: sqlite\n",
    "deploy/environments/staging.yml": '---\nservice_version: "0.3.0"\nartifact_run: ""\n',
    "deploy/environments/production.yml": '---\nservice_version: "0.3.0"\nartifact_run: ""\n',
}
SHARED_REPOSITORY = "platform/pipelines"
# What docs/pipelines.md tells an adopter to replace: the shared repository and the commit reviewed there.
PLACEHOLDER = re.compile(r"example-org/event-service/(\.github/workflows/[\w.-]+)@(?:0123456789abcdef){2}01234567")


@dataclass
class Adopter:
    root: Path
    remote: Remote
    shared: Remote
    github: GitHub


def shared_pipelines(root: Path, edit=None) -> Remote:
    """The shared repository the adopter calls: the reusable workflows in its .github/workflows/, as in a bake."""
    folder = root / "shared-work"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / ".github" / "workflows").mkdir(parents=True)
    for workflow in (REPO_ROOT / "pipelines" / "github" / "workflows").glob("reusable-*.yml"):
        text = workflow.read_text()
        (folder / ".github" / "workflows" / workflow.name).write_text(edit(workflow.name, text) if edit else text)
    target = root / "shared.git"
    if not target.exists():
        return Remote.of_project(folder, target, "the shared pipelines")
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "a changed copy of the shared pipelines")
    git(folder, "push", "-q", "--force", str(target), "HEAD:refs/heads/main")
    return Remote(target)


def adopt(root: Path, shared: Remote) -> Remote:
    """The steps of docs/pipelines.md, "Adopting the pipelines", on a repository made here."""
    project = root / "tiny-orders"
    for name, text in TINY_FILES.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    # 1. ansible/ (with its make fragment), with the team's inventories
    shutil.copytree(REPO_ROOT / "ansible", project / "ansible",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "inventories"))
    for environment, address in (("staging", "192.0.2.11"), ("production", "192.0.2.21")):
        inventory = project / "ansible" / "inventories" / environment
        (inventory / "group_vars" / "all").mkdir(parents=True)
        (inventory / "hosts.yml").write_text(f"---\nall:\n  children:\n    service_hosts:\n      hosts:\n"
                                             f"        tiny-{environment}:\n          ansible_host: {address}\n")
        (inventory / "group_vars" / "all" / "main.yml").write_text(f"---\ndeploy_environment: {environment}\n")
    # 2. the example callers, pointed at the shared repository and the commit reviewed there
    workflows = project / ".github" / "workflows"
    workflows.mkdir(parents=True)
    pinned = shared.head()
    for example in (REPO_ROOT / "pipelines" / "github" / "examples").glob("*.yml"):
        text, count = PLACEHOLDER.subn(rf"{SHARED_REPOSITORY}/\1@{pinned}", example.read_text())
        assert count, f"{example.name} names no placeholder to replace"
        (workflows / example.name).write_text(text)
    return Remote.of_project(project, root / "tiny-orders.git", "tiny-orders adopts the event-service pipelines")


@pytest.fixture
def adopter(tmp_path: Path) -> Adopter:
    shared = shared_pipelines(tmp_path)
    remote = adopt(tmp_path, shared)
    github = GitHub(tmp_path / "github", remote, Path(sys.executable), runner_env(),
                    repository="example/tiny-orders", secrets={"ANSIBLE_SSH_PRIVATE_KEY": "not a real key"},
                    shared={SHARED_REPOSITORY: shared})
    return Adopter(tmp_path, remote, shared, github)


def repin(adopter: Adopter, shared: Remote) -> tuple[str, str]:
    """The adopter moves its callers to a new commit of the shared repository (a reviewed change of the pins)."""
    def edit(work: Path) -> None:
        for caller in (work / ".github" / "workflows").glob("*.yml"):
            caller.write_text(re.sub(rf"({SHARED_REPOSITORY}/\.github/workflows/[\w.-]+)@[0-9a-f]{{40}}",
                                     rf"\1@{shared.head()}", caller.read_text()))
    return adopter.remote.commit(adopter.root, edit, "ci: move to the reviewed commit of the shared pipelines")


def test_a_repository_that_is_not_a_bake_adopts_the_pipelines_by_the_doc(adopter):
    started = cpu_seconds()
    pull_request = adopter.github.run("event-service-pipeline.yml", "pull_request", adopter.remote.head(),
                                      ref="refs/pull/1/merge")
    push = adopter.github.run("event-service-pipeline.yml", "push", adopter.remote.head())
    report("adopter: pull request and push runs", started, pull_request, push)

    assert pull_request.conclusion == "success", pull_request.digest()
    assert {k for k, j in pull_request.jobs.items() if j.conclusion == "skipped"} == {"image", "staging", "drift"}
    assert push.conclusion == "success", push.digest()
    version = push.job("checks").outputs["version"]
    assert [p.name for p in adopter.github.artifact(push.run_id, f"wheel-{version}").iterdir()] == [
        f"tiny_orders-{version}-py3-none-any.whl"]
    assert adopter.github.pushed_images()[0]["image"] == f"ghcr.io/example/tiny-orders:{version.replace('+', '-')}"
    (pull,) = adopter.github.pull_requests()
    assert environment_file(adopter.remote, pull["head"], "staging") == {
        "service_version": version, "artifact_run": str(push.run_id)}


JENKINS_CREDENTIALS = {
    "ansible-ssh-key": {"kind": "ssh", "content": "not a real key"},
    "ansible-vault-password": {"kind": "file", "content": "not a real password\n"},
    "git-push": {"kind": "usernamePassword", "username": "jenkins", "password": "git-token"},
    "container-registry": {"kind": "usernamePassword", "username": "ci", "password": "registry-token"},
    "loadtest-auth-token": {"kind": "string", "content": "a token"},
}


def test_a_repository_that_is_not_a_bake_runs_the_jenkins_pipeline_of_the_doc(adopter):
    """Jenkins, step 3 of the doc, its CI half: a pull request's build runs Checks and Build, and stops there."""

    def add_the_library(work: Path) -> None:
        # the shared library as the bakes carry it (legacySCM); a registered library is the same files
        shutil.copytree(REPO_ROOT / "pipelines" / "jenkins" / "vars", work / "jenkins" / "vars")
        shutil.copy(REPO_ROOT / "pipelines" / "jenkins" / "Jenkinsfile", work / "Jenkinsfile")

    _, commit = adopter.remote.commit(adopter.root, add_the_library, "ci: the event-service Jenkins pipeline")
    jenkins = Jenkins(adopter.root / "jenkins", adopter.remote, Path(sys.executable), runner_env(),
                      JENKINS_CREDENTIALS, job_name="tiny-orders/PR-1")
    build = jenkins.build("pull_request", commit, branch="PR-1")

    assert build.result == "SUCCESS", build.digest()
    ran = {name for name, stage in build.stages.items() if stage.result == "SUCCESS"}
    assert ran == {"Checks", "Checks / Lint", "Checks / Type check", "Checks / Tests", "Checks / Template", "Build",
                   "Build / Wheel and image"}
    version = build.env["SERVICE_VERSION"]
    assert [p.name for p in jenkins.archive(build.number).rglob("*.whl")] == [f"tiny_orders-{version}-py3-none-any.whl"]
    assert not (adopter.root / "jenkins" / "registry.jsonl").exists(), "a pull request pushes no image"


def test_without_the_upload_step_the_deploy_job_fails_for_want_of_the_wheel(adopter):
    """The missing-wheel class of bug, caught: a copy of the checks workflow that does not upload the wheel."""

    def drop_the_upload(name: str, text: str) -> str:
        if name != "reusable-checks.yml":
            return text
        document = yaml.safe_load(text)
        steps = document["jobs"]["build"]["steps"]
        kept = [s for s in steps if s.get("name") != "keep the wheel for the deploys"]
        assert len(kept) == len(steps) - 1
        document["jobs"]["build"]["steps"] = kept
        return yaml.safe_dump(document, sort_keys=False)

    repin(adopter, shared_pipelines(adopter.root, drop_the_upload))
    push = adopter.github.run("event-service-pipeline.yml", "push", adopter.remote.head())
    assert push.conclusion == "success", push.digest()
    number = adopter.github.pull_requests()[-1]["number"]
    before, after = adopter.github.merge(number)
    deploy = only_run(adopter.github.on_push(before, after), "event-service-deploy-staging.yml")

    job = deploy.job("deploy/deploy")
    assert job.conclusion == "failure"
    fetch = job.step("fetch the wheel of the release")
    assert fetch.outcome == "failure" and "Artifact not found" in fetch.output
    assert job.step("make deploy").outcome == "skipped"
    assert deploy.job("rollback").conclusion == "skipped", "nothing was deployed, so nothing is rolled back"


def test_without_the_download_step_make_deploy_finds_no_wheel_as_the_issue_saw(adopter):
    """The shipped bug of issue 20 itself: a deploy job that never receives the wheel the checks job built."""

    def drop_the_download(name: str, text: str) -> str:
        if name != "reusable-deploy.yml":
            return text
        document = yaml.safe_load(text)
        steps = document["jobs"]["deploy"]["steps"]
        document["jobs"]["deploy"]["steps"] = [s for s in steps if s.get("name") != "fetch the wheel of the release"]
        return yaml.safe_dump(document, sort_keys=False)

    push = adopter.github.run("event-service-pipeline.yml", "push", adopter.remote.head())
    assert push.conclusion == "success", push.digest()
    repin(adopter, shared_pipelines(adopter.root, drop_the_download))
    before, after = adopter.github.merge(adopter.github.pull_requests()[-1]["number"])
    deploy = only_run(adopter.github.on_push(before, after), "event-service-deploy-staging.yml")

    job = deploy.job("deploy/deploy")
    make_deploy = job.step("make deploy")
    assert make_deploy.outcome == "failure", deploy.digest()
    version = push.job("checks").outputs["version"]
    assert f"dist/tiny_orders-{version}-py3-none-any.whl does not exist" in re.sub(r"\s+", " ", make_deploy.output)


def test_the_deploy_refuses_a_wheel_whose_own_version_is_not_the_one_git_names(adopter, tmp_path):
    """The version deployed is the version tested: a wheel renamed (or rebuilt) to the promoted name is refused."""
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(adopter.remote.path), str(work))
    subprocess.run(["make", "install"], cwd=work, check=True, capture_output=True, timeout=120)
    subprocess.run(["make", "build", "VERSION=0.2.9"], cwd=work, check=True, capture_output=True, timeout=120)
    dist = work / "dist"
    (dist / "tiny_orders-0.2.9-py3-none-any.whl").rename(dist / "tiny_orders-0.3.0-py3-none-any.whl")
    result = subprocess.run(["make", "deploy", "ENV=staging"], cwd=work, env=runner_env(), capture_output=True,
                            text=True, timeout=300, check=False)
    output = re.sub(r"\s+", " ", result.stdout + result.stderr)
    assert result.returncode != 0
    assert "holds version 0.2.9, not 0.3.0" in output, output[-3000:]
