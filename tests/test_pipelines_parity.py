"""Parity: the GitHub workflows and the Jenkins pipeline run the same make targets in the same order.

Both pipelines are read as data (the workflows as YAML, the Jenkins pipeline through the structure parser) and
turned into the list of make calls a run would make, for the three kinds of run: a pull request, a push to main,
and the scheduled drift check. On GitHub a push to main is three runs: cd.yml (checks, image, the staging
promotion's pull request), then, once a person merges it, deploy-staging.yml (deploy, gate, the production
promotion's pull request), then deploy-production.yml; Jenkins does all of it in one build that waits at an input
for each merge. The expected lists below are the stage graph, written down once (docs/pipelines.md shows it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_pipelines_jenkins_structure import Statement, find_pipeline, parse_groovy

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / "pipelines" / "github" / "workflows"
EXAMPLES = ROOT / "pipelines" / "github" / "examples"
LIBRARY_PIPELINE = ROOT / "pipelines" / "jenkins" / "vars" / "eventServicePipeline.groovy"


@dataclass(frozen=True)
class MakeCall:
    """One make invocation: the target, the environment it acts on, the variables it gets, and whether it runs
    only when something before it failed. The GitOps changes are steps of the graph too: `git:promote` (the
    promotion, for review: a pull request on GitHub, a branch on Jenkins) and `git:revert` (the same, back to the
    previous release, after a rollback)."""

    target: str
    env: str | None = None
    variables: frozenset[str] = frozenset()
    on_failure: bool = False

    def __repr__(self) -> str:
        parts = [self.target] + [f"{name}=" for name in sorted(self.variables)]
        if self.env:
            parts.append(f"@{self.env}")
        if self.on_failure:
            parts.append("(on failure)")
        return " ".join(parts)


def call(target: str, env: str | None = None, *variables: str, on_failure: bool = False) -> MakeCall:
    names = set(variables) | ({"ENV"} if env else set())
    return MakeCall(target, env, frozenset(names), on_failure)


CHECKS = [call("install"), call("lint"), call("install"), call("type"), call("install"), call("test")]
BUILD = [call("install"), call("build", None, "VERSION"), call("image", None, "VERSION")]
PUSH = [call("image-push", None, "VERSION")]


def promotion(environment: str) -> list[MakeCall]:
    return [call("promote", environment, "VERSION"), call("git:promote", environment)]


STAGING = [
    call("deploy", "staging"),
    call("verify", "staging"),
    call("loadtest", "staging", "HOST"),
    call("rollback", "staging", on_failure=True),
    call("git:revert", "staging", on_failure=True),
]
PRODUCTION = [
    call("deploy", "production"),
    call("verify", "production"),
    call("rollback", "production", on_failure=True),
    call("git:revert", "production", on_failure=True),
]
DRIFT = [call("drift", "staging"), call("drift", "production")]

EXPECTED = {
    "pull_request": CHECKS + BUILD,
    "push": CHECKS + BUILD + PUSH + promotion("staging") + STAGING + promotion("production") + PRODUCTION,
    "schedule": DRIFT,
}
# The runs of each kind, in order: for a push, the merges of the two promotions start the next two.
BAKED_CALLERS = {
    "pull_request": ["ci.yml"],
    "push": ["cd.yml", "deploy-staging.yml", "deploy-production.yml"],
    "schedule": ["drift.yml"],
}
EXAMPLE_CALLERS = {
    "pull_request": ["event-service-pipeline.yml"],
    "push": ["event-service-pipeline.yml", "event-service-deploy-staging.yml", "event-service-deploy-production.yml"],
    "schedule": ["event-service-pipeline.yml"],
}

# ------------------------------------------------------------------------------------------ GitHub Actions

_MAKE_IN_SHELL = re.compile(
    r"(?:^|[;&|(]\s*)make\s+(?P<flags>(?:(?:-o\s+[\w-]+|--?[\w-]+)\s+)*)(?P<target>[\w-]+)"
    r"(?P<vars>(?:[ \t]+[A-Z_]+=\S+)*)",
    re.M,
)
_EXPRESSION = re.compile(r"^\$\{\{\s*(.*?)\s*\}\}$", re.S)


def _evaluate(expression: object, context: dict[str, object]) -> object:
    """Evaluate the small subset of GitHub expressions the workflows use; other text is returned as it is."""
    if not isinstance(expression, str):
        return expression
    match = _EXPRESSION.match(expression.strip())
    if not match:
        return expression
    source = match.group(1)
    if re.fullmatch(r"[\w.-]+", source) and source in context:
        return context[source]
    if re.search(r"\b(steps|needs|secrets|vars|github\.(?!event_name))", source):
        return expression  # a runtime value: unknown here, and not part of the stage graph
    python = re.sub(r"\b(inputs\.[\w-]+|github\.event_name|matrix\.[\w-]+)", lambda m: f"_[{m.group(1)!r}]", source)
    python = python.replace("!cancelled()", "True").replace("failure()", "True")
    python = python.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    return eval(python, {"__builtins__": {}}, {"_": context})  # noqa: S307 - our own files, tiny grammar


def _job_order(jobs: dict[str, dict]) -> list[str]:
    """Jobs in an order that respects `needs`, otherwise file order (the order GitHub shows them in)."""
    ordered: list[str] = []
    remaining = list(jobs)
    while remaining:
        for name in remaining:
            needs = jobs[name].get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            if all(need in ordered for need in needs):
                ordered.append(name)
                remaining.remove(name)
                break
        else:
            raise AssertionError(f"cycle in needs among {remaining}")
    return ordered


def github_make_calls(workflow: Path, context: dict[str, object], on_failure: bool = False) -> list[MakeCall]:
    """The make calls a run of `workflow` makes, following calls of reusable workflows into their files."""
    document = yaml.safe_load(workflow.read_text(encoding="utf-8"))
    calls: list[MakeCall] = []
    for job_name in _job_order(document["jobs"]):
        job = document["jobs"][job_name]
        for job_context in _matrix_contexts(job, context):
            condition = str(job.get("if", ""))
            if condition and not _evaluate(
                "${{ " + condition.removeprefix("${{").removesuffix("}}") + " }}", job_context
            ):
                continue
            job_on_failure = on_failure or "failure()" in condition
            if "uses" in job:
                reusable = WORKFLOWS / Path(job["uses"].split("@")[0]).name
                inputs = {f"inputs.{k}": _evaluate(v, job_context) for k, v in job.get("with", {}).items()}
                defaults = yaml.safe_load(reusable.read_text(encoding="utf-8"))[True]["workflow_call"]["inputs"]
                for name, spec in defaults.items():
                    inputs.setdefault(f"inputs.{name}", spec.get("default"))
                inner = {"github.event_name": job_context["github.event_name"]} | inputs
                calls += github_make_calls(reusable, inner, job_on_failure)
            else:
                calls += _job_make_calls(job, job_context, job_on_failure)
    return calls


def _matrix_contexts(job: dict, context: dict[str, object]) -> list[dict[str, object]]:
    matrix = job.get("strategy", {}).get("matrix")
    if not matrix:
        return [context]
    ((key, values),) = matrix.items()
    return [context | {f"matrix.{key}": value} for value in values]


def _job_make_calls(job: dict, context: dict[str, object], job_on_failure: bool = False) -> list[MakeCall]:
    calls = []
    # A pull request back to the previous release is one step of the graph (git:revert), however it is made.
    reverting = bool(context.get("inputs.rollback-from"))
    for step in job.get("steps", []):
        if "run" not in step:
            continue
        condition = str(step.get("if", ""))
        on_failure = job_on_failure or "failure()" in condition
        if condition and not _evaluate("${{ " + condition.removeprefix("${{").removesuffix("}}") + " }}", context):
            continue
        environment = {k: _evaluate(v, context) for k, v in (job.get("env", {}) | step.get("env", {})).items()}
        deploy_env = str(environment.get("DEPLOY_ENV")) if "DEPLOY_ENV" in environment else None
        if "gh pr create" in step["run"]:
            calls.append(MakeCall("git:revert" if reverting else "git:promote", deploy_env, frozenset({"ENV"}),
                                  on_failure))
            continue
        if reverting:
            continue
        for match in _MAKE_IN_SHELL.finditer(step["run"]):
            variables = dict(re.findall(r"([A-Z_]+)=(\S+)", match.group("vars")))
            env_value = variables.get("ENV", "").strip('"').removeprefix("$")
            calls.append(
                MakeCall(
                    target=match.group("target"),
                    env=str(environment.get(env_value, env_value)) or None,
                    variables=frozenset(variables),
                    on_failure=on_failure,
                )
            )
    return [c for c in calls if not c.target.startswith("print-")]


# ---------------------------------------------------------------------------------------------------- Jenkins

_GITOPS_STEPS = {"gitopsRecordPromotion": "git:promote", "gitopsRevertPromotion": "git:revert"}
_MAKE_TARGET_STEP = re.compile(r"^\(\s*'(?P<target>[\w-]+)'\s*(?:,\s*\[(?P<vars>.*)\])?\s*\)$", re.S)


def _when_holds(when: Statement | None, run: str) -> bool:
    if when is None:
        return True
    return all(_condition_holds(condition, run) for condition in when.block or [])


def _condition_holds(condition: Statement, run: str) -> bool:
    if condition.name in {"beforeAgent", "beforeInput", "beforeOptions"}:
        return True
    if condition.name == "not":
        return not all(_condition_holds(inner, run) for inner in condition.block)
    if condition.name == "branch":
        return run == "push"  # the only branch condition is the default branch
    if condition.name == "triggeredBy":
        return run == "schedule" and "TimerTrigger" in condition.header
    if condition.name == "changelog":
        return False  # a normal commit, not the pipeline's own [skip ci] promotion commit
    raise AssertionError(f"line {condition.line}: no model of the when condition `{condition.name}`")


def jenkins_make_calls(run: str) -> list[MakeCall]:
    """The make calls the Jenkins pipeline makes for a kind of run: pull_request, push (main) or schedule."""
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    return _stages_make_calls(pipeline.child("stages"), run)


def _stages_make_calls(stages: Statement, run: str) -> list[MakeCall]:
    calls: list[MakeCall] = []
    for stage in stages.children("stage"):
        if not _when_holds(stage.child("when"), run):
            continue
        for work in ("steps", "stages", "parallel"):
            block = stage.child(work)
            if block is not None:
                calls += _steps_make_calls(block) if work == "steps" else _stages_make_calls(block, run)
        post = stage.child("post")
        if post is not None and post.child("failure") is not None:
            handlers = _steps_make_calls(post.child("failure"))
            calls += [MakeCall(c.target, c.env, c.variables, on_failure=True) for c in handlers]
    return calls


def _steps_make_calls(steps: Statement) -> list[MakeCall]:
    calls = []
    for step in steps.block or []:
        if step.name == "makeTarget":
            match = _MAKE_TARGET_STEP.match(step.header)
            assert match, f"line {step.line}: makeTarget takes a literal target and a literal map"
            variables = dict(re.findall(r"(\w+):\s*('[^']*'|[\w.]+)", match.group("vars") or ""))
            env = variables.get("ENV")
            calls.append(MakeCall(match.group("target"), env.strip("'") if env else None, frozenset(variables)))
        elif step.name in _GITOPS_STEPS:
            environment = re.match(r"^\(\s*'(\w+)'", step.header)
            assert environment, f"line {step.line}: {step.name} takes a literal environment first"
            calls.append(MakeCall(_GITOPS_STEPS[step.name], environment.group(1), frozenset({"ENV"})))
        elif step.block is not None:
            calls += _steps_make_calls(step)
    return calls


# ------------------------------------------------------------------------------------------------- the tests


def github_runs_make_calls(folder: Path, callers: list[str], run: str) -> list[MakeCall]:
    return [c for caller in callers for c in github_make_calls(folder / caller, {"github.event_name": run})]


@pytest.mark.parametrize("run", EXPECTED)
def test_github_callers_run_the_stage_graph(run):
    assert github_runs_make_calls(WORKFLOWS, BAKED_CALLERS[run], run) == EXPECTED[run]


@pytest.mark.parametrize("run", EXPECTED)
def test_jenkins_pipeline_runs_the_stage_graph(run):
    assert jenkins_make_calls(run) == EXPECTED[run]


@pytest.mark.parametrize("run", EXPECTED)
def test_example_callers_for_existing_repos_run_the_stage_graph(run):
    assert github_runs_make_calls(EXAMPLES, EXAMPLE_CALLERS[run], run) == EXPECTED[run]


def test_parity_extraction_notices_a_reordered_pipeline(tmp_path, monkeypatch):
    """The comparison must be able to fail: swap two make calls in a copy of the library and look again."""
    source = LIBRARY_PIPELINE.read_text(encoding="utf-8")
    swapped = source.replace("makeTarget('verify', [ENV: 'staging'])", "@@VERIFY@@", 1)
    loadtest = "makeTarget('loadtest', [HOST: settings.stagingUrl, ENV: 'staging'])"
    swapped = swapped.replace(loadtest, "makeTarget('verify', [ENV: 'staging'])", 1)
    swapped = swapped.replace("@@VERIFY@@", loadtest, 1)
    assert swapped != source
    copy = tmp_path / "eventServicePipeline.groovy"
    copy.write_text(swapped, encoding="utf-8")
    monkeypatch.setattr(__import__(__name__), "LIBRARY_PIPELINE", copy)
    assert jenkins_make_calls("push") != EXPECTED["push"]


def all_invoked_targets() -> list[MakeCall]:
    """Every make call of every kind of run, in both engines, with the print-* queries the pipelines make."""
    calls = []
    for run in EXPECTED:
        calls += github_runs_make_calls(WORKFLOWS, BAKED_CALLERS[run], run)
        calls += jenkins_make_calls(run)
    queries = [call("print-VERSION"), call("print-IMAGE"), call("print-IMAGE_TAG", None, "VERSION")]
    return [c for c in [*calls, *queries] if not c.target.startswith("git:")]
