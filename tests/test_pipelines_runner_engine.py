"""Runs the GitHub Actions workflows and the declarative Jenkins pipeline the way their runners would, on this machine.

No runner of either engine is installable here, so this module is one: it reads the pipeline files as shipped, and
executes every `run:` / `sh` step for real, in order, each job (GitHub) or each stage with an agent (Jenkins) in a
fresh clone of the repository. Only what the pipelines delegate to the engine stands in, by its documented effect
(docs/pipelines.md, "What the runner test stands in for", lists them):

- the Git host: a bare repository on disk (`Remote`); pull requests and merges (`GitHub.merge`) as a person does them;
- actions/checkout: a new clone of that repository at the ref (shallow unless `fetch-depth: 0`), nothing else kept;
- actions/setup-python: the given interpreter's folder first on PATH (it must find its `python-version-file`);
- actions/cache: a cold cache (nothing restored, nothing kept);
- actions/upload-artifact, actions/download-artifact: copies to and from a folder per run and artifact name (a name
  twice in one run fails; another run's artifact needs `run-id` and `github-token`; a missing one fails);
- docker/login-action, `docker`, `gh`: recording stand-ins (tests/test_container.py builds and runs the image for
  real); `docker push` needs the image in this job's own daemon and a login to its registry, `gh pr create` a
  GH_TOKEN and a branch that exists on the remote;
- environments: the job's gate counts as approved, and is recorded;
- reusable workflows: their inputs, secrets and outputs, and GitHub's rule that a called job asks no permission its
  caller lacks; `${{ }}` expressions with GitHub's operators, status functions and coercions;
- Jenkins: `when`, `input` (a callback: the test merges the pull request there), `agent` (a new workspace),
  `parallel`, `post`, `stash`/`unstash`, `archiveArtifacts`/`copyArtifacts`, `junit`, credentials bindings, `lock`,
  and the shared library's vars, interpreted from their own files (their `sh` scripts run as written).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_pipelines_jenkins_structure import Statement, find_pipeline, parse_groovy

STEP_TIMEOUT_SECONDS = 1200


# ----------------------------------------------------------------------------------------- GitHub expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\],.*])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
_STATUS_FUNCTIONS = re.compile(r"\b(success|failure|always|cancelled)\s*\(")


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if not match or match.end() == position:
            if source[position:].strip() == "":
                break
            raise SyntaxError(f"cannot read the expression {source!r} at {position}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


def truthy(value: object) -> bool:
    """GitHub's truthiness: false, 0, '', null and NaN are false."""
    if isinstance(value, float) and value != value:
        return False
    return value not in (None, False, 0, "", 0.0)


def to_string(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _number(value: object) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return float("nan")


def _equal(left: object, right: object) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if type(left) is type(right):
        return left == right
    return _number(left) == _number(right)


def _lookup(container: object, key: object) -> object:
    if isinstance(container, dict):
        if key in container:
            return container[key]
        lowered = {str(k).lower(): v for k, v in container.items()}
        return lowered.get(str(key).lower())
    if isinstance(container, list) and isinstance(key, (int, float)) and 0 <= int(key) < len(container):
        return container[int(key)]
    return None


class _Parser:
    def __init__(self, source: str, context: dict[str, Any], status: dict[str, bool]) -> None:
        self.tokens = _tokens(source)
        self.position = 0
        self.context = context
        self.status = status

    def parse(self) -> object:
        value = self.or_()
        if self.position != len(self.tokens):
            raise SyntaxError(f"unexpected {self.tokens[self.position]!r}")
        return value

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (text is not None and token[1] != text):
            raise SyntaxError(f"expected {text!r}, found {token!r}")
        self.position += 1
        return token

    def or_(self) -> object:
        value = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> object:
        value = self.equality()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.equality()
            value = right if truthy(value) else value
        return value

    def equality(self) -> object:
        value = self.comparison()
        while self.peek() in (("op", "=="), ("op", "!=")):
            operator = self.take()[1]
            right = self.comparison()
            value = _equal(value, right) if operator == "==" else not _equal(value, right)
        return value

    def comparison(self) -> object:
        value = self.unary()
        while self.peek() in (("op", "<"), ("op", ">"), ("op", "<="), ("op", ">=")):
            operator = self.take()[1]
            left, right = _number(value), _number(self.unary())
            value = {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[operator]
        return value

    def unary(self) -> object:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self) -> object:
        value = self.primary()
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise SyntaxError(f"property name expected, found {name!r}")
                value = _lookup(value, name)
            elif token == ("op", "["):
                self.take()
                key = self.or_()
                self.take("]")
                value = _lookup(value, key)
            else:
                return value

    def primary(self) -> object:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind == "op" and text == "(":
            value = self.or_()
            self.take(")")
            return value
        if kind != "name":
            raise SyntaxError(f"unexpected {text!r}")
        if text in ("true", "false"):
            return text == "true"
        if text == "null":
            return None
        if self.peek() == ("op", "("):
            self.take()
            arguments = []
            while self.peek() != ("op", ")"):
                arguments.append(self.or_())
                if self.peek() == ("op", ","):
                    self.take()
            self.take(")")
            return self.call(text, arguments)
        return _lookup(self.context, text)

    def call(self, name: str, arguments: list[object]) -> object:
        lowered = name.lower()
        if lowered in ("success", "failure"):
            return self.status[lowered]
        if lowered == "always":
            return True
        if lowered == "cancelled":
            return False
        if lowered == "contains":
            haystack, needle = arguments
            if isinstance(haystack, list):
                return any(_equal(item, needle) for item in haystack)
            return to_string(needle).lower() in to_string(haystack).lower()
        if lowered == "startswith":
            return to_string(arguments[0]).lower().startswith(to_string(arguments[1]).lower())
        if lowered == "endswith":
            return to_string(arguments[0]).lower().endswith(to_string(arguments[1]).lower())
        if lowered == "fromjson":
            return json.loads(to_string(arguments[0]))
        if lowered == "tojson":
            return json.dumps(arguments[0])
        if lowered == "format":
            text = to_string(arguments[0])
            for index, argument in enumerate(arguments[1:]):
                text = text.replace("{" + str(index) + "}", to_string(argument))
            return text
        if lowered == "join":
            separator = to_string(arguments[1]) if len(arguments) > 1 else ","
            return separator.join(to_string(item) for item in arguments[0]) if isinstance(arguments[0], list) else ""
        if lowered == "hashfiles":
            return _hash_files(Path(str(self.context.get("_workspace", "."))), [to_string(a) for a in arguments])
        raise NotImplementedError(f"expression function {name}()")


def _hash_files(workspace: Path, patterns: list[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(workspace.glob(pattern)):
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def evaluate(source: str, context: dict[str, Any], status: dict[str, bool] | None = None) -> object:
    """One expression (the text inside `${{ }}`, or an `if:` without it)."""
    return _Parser(source, context, status or {"success": True, "failure": False}).parse()


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(value: object, context: dict[str, Any], status: dict[str, bool] | None = None) -> object:
    """A workflow value with `${{ }}` in it: one whole expression keeps its type, text around it makes a string."""
    if not isinstance(value, str):
        return value
    whole = _TEMPLATE.fullmatch(value.strip())
    if whole:
        return evaluate(whole.group(1), context, status)
    return _TEMPLATE.sub(lambda m: to_string(evaluate(m.group(1), context, status)), value)


def condition_holds(condition: object, context: dict[str, Any], status: dict[str, bool]) -> bool:
    """An `if:`; without a status function in it, success() is implied (GitHub's rule)."""
    if condition is None:
        return status["success"]
    text = str(condition).strip()
    whole = _TEMPLATE.fullmatch(text)
    text = whole.group(1) if whole else text
    if not _STATUS_FUNCTIONS.search(text):
        text = f"success() && ({text})"
    return truthy(evaluate(text, context, status))


# ---------------------------------------------------------------------------------------------------- git


def git(cwd: Path, *args: str, timeout: float = 120) -> str:
    identity = ["-c", "user.email=person@example.com", "-c", "user.name=A Person", "-c", "init.defaultBranch=main"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd}:\n{result.stdout}{result.stderr}")
    return result.stdout


class Remote:
    """The Git host's copy of the repository: a bare repository both engines fetch from and push to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_project(cls, project: Path, path: Path, message: str = "the project") -> Remote:
        """Commit `project` as it is (its .gitignore applies) and publish it as `main`."""
        if not (project / ".git").exists():
            git(project, "init", "-q", "-b", "main")
        git(project, "add", "-A")
        git(project, "commit", "-q", "--allow-empty", "-m", message)
        git(path.parent, "init", "-q", "--bare", str(path))
        git(path, "config", "uploadpack.allowAnySHA1InWant", "true")
        git(project, "push", "-q", str(path), "HEAD:refs/heads/main")
        return cls(path)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def head(self, branch: str = "main") -> str:
        return git(self.path, "rev-parse", f"refs/heads/{branch}").strip()

    def read(self, commit: str, path: str) -> str:
        return git(self.path, "show", f"{commit}:{path}")

    def files(self, commit: str, folder: str) -> list[str]:
        return git(self.path, "ls-tree", "--name-only", f"{commit}:{folder}").split()

    def changed(self, before: str, after: str) -> list[str]:
        return git(self.path, "diff", "--name-only", before, after).split()

    def proposed(self, branch: str, base: str = "main") -> list[str]:
        """The files a pull request of `branch` into `base` changes (the diff from their merge base)."""
        return git(self.path, "diff", "--name-only", f"{base}...{branch}").split()

    def has_branch(self, branch: str) -> bool:
        return bool(git(self.path, "for-each-ref", f"refs/heads/{branch}").strip())

    def commit(self, scratch: Path, edit: Callable[[Path], None], message: str,
               branch: str = "main") -> tuple[str, str]:
        """A person's commit on `branch`: clone, edit, commit, push. Returns (before, after)."""
        work = Path(tempfile.mkdtemp(dir=scratch, prefix="person-"))
        git(work, "clone", "-q", "--branch", branch, str(self.path), ".")
        before = git(work, "rev-parse", "HEAD").strip()
        edit(work)
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", message)
        git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        shutil.rmtree(work, ignore_errors=True)
        return before, self.head(branch)

    def merge(self, scratch: Path, head: str, base: str = "main", message: str | None = None) -> tuple[str, str]:
        """Merge branch `head` into `base` with a merge commit, as the pull request's merge button does."""
        work = Path(tempfile.mkdtemp(dir=scratch, prefix="merge-"))
        git(work, "clone", "-q", "--branch", base, str(self.path), ".")
        before = git(work, "rev-parse", "HEAD").strip()
        git(work, "merge", "-q", "--no-ff", "-m", message or f"Merge branch '{head}'", f"origin/{head}")
        git(work, "push", "-q", "origin", f"HEAD:refs/heads/{base}")
        shutil.rmtree(work, ignore_errors=True)
        return before, self.head(base)


# ------------------------------------------------------------------------------------------------ stand-ins

_GH_STANDIN = r'''
import fcntl, json, os, subprocess, sys
from pathlib import Path

def fail(message):
    print(f"gh (stand-in): {message}", file=sys.stderr)
    sys.exit(1)

def option(args, name):
    return args[args.index(name) + 1] if name in args else None

args = sys.argv[1:]
if not os.environ.get("GH_TOKEN"):
    fail("To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.")
state = Path(os.environ["STANDIN_GITHUB"]) / "pulls.json"
with open(state.with_suffix(".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    pulls = json.loads(state.read_text()) if state.exists() else []
    if args[:2] == ["auth", "setup-git"]:
        sys.exit(0)
    if args[:2] == ["pr", "list"]:
        if option(args, "--jq") != '.[0].url // ""':
            fail(f"the stand-in knows one --jq expression, not {option(args, '--jq')}")
        found = [p for p in pulls if p["head"] == option(args, "--head") and p["state"] == option(args, "--state")]
        print(found[0]["url"] if found else "")
        sys.exit(0)
    if args[:2] == ["pr", "create"]:
        if not os.environ.get("GH_REPO"):
            fail("no repository: set GH_REPO")
        head, base = option(args, "--head"), option(args, "--base")
        remote = os.environ["STANDIN_REMOTE"]
        for branch in (head, base):
            listed = subprocess.run(["git", "-C", remote, "for-each-ref", f"refs/heads/{branch}"],
                                    capture_output=True, text=True, check=True).stdout
            if not listed.strip():
                fail(f"pull request create failed: branch {branch} does not exist on the remote")
        number = len(pulls) + 1
        url = f"https://github.com/{os.environ['GH_REPO']}/pull/{number}"
        pulls.append({"number": number, "url": url, "head": head, "base": base, "title": option(args, "--title"),
                      "body": option(args, "--body"), "state": "open"})
        state.write_text(json.dumps(pulls, indent=1))
        print(url)
        sys.exit(0)
fail(f"unsupported command: gh {' '.join(args)}")
'''

_DOCKER_STANDIN = r'''
import json, os, sys
from pathlib import Path

def fail(message):
    print(f"docker (stand-in): {message}", file=sys.stderr)
    sys.exit(1)

def option(args, *names):
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None

args = sys.argv[1:]
daemon = Path(os.environ["STANDIN_DOCKER_STATE"])
daemon.mkdir(parents=True, exist_ok=True)
images_file, logins_file = daemon / "images.json", daemon / "logins.json"
images = json.loads(images_file.read_text()) if images_file.exists() else {}
logins = json.loads(logins_file.read_text()) if logins_file.exists() else []
command = args[0] if args else ""
if command == "build":
    tag = option(args, "--tag", "-t")
    context = Path(args[-1])
    dockerfile = Path(option(args, "--file", "-f") or context / "Dockerfile")
    if not tag or not dockerfile.is_file():
        fail(f"build needs --tag and {dockerfile}")
    images[tag] = {"built_in": str(daemon), "build_args": [a for a in args if "=" in a]}
elif command == "save":
    output, image = option(args, "--output", "-o"), args[-1]
    if image not in images:
        fail(f"no such image: {image}")
    Path(output).write_text(json.dumps({image: images[image]}))
elif command == "load":
    images.update(json.loads(Path(option(args, "--input", "-i")).read_text()))
elif command == "push":
    image = args[-1]
    if image not in images:
        fail(f"An image does not exist locally with the tag: {image}")
    if image.split("/")[0] not in logins:
        fail(f"denied: not logged in to {image.split('/')[0]}")
    with open(Path(os.environ["STANDIN_REGISTRY_LOG"]), "a") as log:
        log.write(json.dumps({"image": image, **images[image]}) + "\n")
elif command == "login":
    if not option(args, "--username", "-u"):
        fail("login needs --username")
    logins.append(args[-1])
elif command == "logout":
    logins = [host for host in logins if host != args[-1]]
else:
    fail(f"unsupported command: docker {' '.join(args)}")
images_file.write_text(json.dumps(images))
logins_file.write_text(json.dumps(logins))
'''


def write_standins(folder: Path) -> Path:
    """`gh` and `docker` stand-ins in `folder`; put it first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in (("gh", _GH_STANDIN), ("docker", _DOCKER_STANDIN)):
        script = folder / name
        script.write_text(f"#!{sys.executable}\n{source}")
        script.chmod(0o755)
    return folder


def _run_script(argv: list[str], cwd: Path, env: dict[str, str], log: list[str],
                capture_stdout: bool = False) -> tuple[int, str]:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, text=True, timeout=STEP_TIMEOUT_SECONDS, check=False,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT)
    output = result.stdout if not capture_stdout else result.stderr
    log.append(output)
    log.append(f"[{time.monotonic() - started:.1f} s, exit {result.returncode}]\n")
    return result.returncode, result.stdout if capture_stdout else output


def _without_noise(log: str) -> str:
    """A log without pip's warnings about this machine's own index folders (they say nothing about the pipeline)."""
    return "".join(line for line in log.splitlines(keepends=True) if not line.startswith("WARNING: Location 'file:"))


def _copy_matches(root: Path, pattern: str, destination: Path) -> list[Path]:
    """Copy the files under `root` matching a glob (`**` allowed) to `destination`, keeping their relative paths."""
    files: set[Path] = set()
    for path in root.glob(pattern):
        files |= {path} if path.is_file() else {p for p in path.rglob("*") if p.is_file()}
    copied = []
    for file in sorted(files):
        target = destination / file.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
        copied.append(target)
    return copied


# ---------------------------------------------------------------------------------------------- GitHub Actions

PERMISSION_LEVELS = {"none": 0, "read": 1, "write": 2}


@dataclass
class StepResult:
    name: str
    outcome: str
    output: str


@dataclass
class JobResult:
    key: str
    conclusion: str
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    annotations: list[str] = field(default_factory=list)
    summary: str = ""
    environment: str | None = None
    seconds: float = 0.0

    def step(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)

    def log(self) -> str:
        return "".join(f"--- {s.name} ({s.outcome})\n{s.output}" for s in self.steps)


@dataclass
class Run:
    run_id: int
    workflow: str
    event_name: str
    sha: str
    jobs: dict[str, JobResult] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def conclusion(self) -> str:
        return "failure" if any(j.conclusion == "failure" for j in self.jobs.values()) else "success"

    def job(self, key: str) -> JobResult:
        return self.jobs[key]

    def log(self) -> str:
        return "\n".join(f"===== {key}: {job.conclusion}\n{job.log()}" for key, job in self.jobs.items())

    def digest(self) -> str:
        """Which jobs ran and how, and the last lines of the failed ones: the message of a failed assertion."""
        lines = [f"{self.workflow} #{self.run_id}: {self.conclusion}"]
        for key, job in self.jobs.items():
            lines.append(f"  {key}: {job.conclusion} {[f'{s.name}={s.outcome}' for s in job.steps]}")
            if job.conclusion == "failure":
                lines.append(_without_noise(job.log())[-5000:])
        return "\n".join(lines)


class GitHub:
    """The stand-in for github.com and its hosted runners, for one repository."""

    def __init__(self, root: Path, remote: Remote, python: Path, env: dict[str, str], *,
                 repository: str = "example/event-service", secrets: dict[str, str] | None = None,
                 variables: dict[str, str] | None = None, shared: dict[str, Remote] | None = None,
                 parallel_jobs: int = 3) -> None:
        self.root = root
        self.remote = remote
        self.python = python
        self.env = env
        self.repository = repository
        self.secrets = secrets or {}
        self.variables = variables or {}
        self.shared = shared or {}
        self.parallel_jobs = parallel_jobs
        self.bin = write_standins(root / "bin")
        self.artifacts = root / "artifacts"
        self.registry_log = root / "registry.jsonl"
        self.approvals: list[tuple[int, str, str]] = []
        self._run_ids = iter(range(101, 100_000))
        self._lock = threading.Lock()

    # ---- the repository's pull requests and images
    def pull_requests(self) -> list[dict[str, Any]]:
        state = self.root / "pulls.json"
        return json.loads(state.read_text()) if state.exists() else []

    def merge(self, number: int) -> tuple[str, str]:
        """A person merges pull request `number` (a merge commit); returns (before, after) of its base."""
        pulls = self.pull_requests()
        pull = next(p for p in pulls if p["number"] == number)
        assert pull["state"] == "open", pull
        before, after = self.remote.merge(self.root, pull["head"], pull["base"],
                                          f"Merge pull request #{number} from {pull['head']}\n\n{pull['title']}")
        pull["state"] = "merged"
        (self.root / "pulls.json").write_text(json.dumps(pulls, indent=1))
        return before, after

    def pushed_images(self) -> list[dict[str, Any]]:
        if not self.registry_log.exists():
            return []
        return [json.loads(line) for line in self.registry_log.read_text().splitlines()]

    def artifact(self, run_id: int, name: str) -> Path:
        return self.artifacts / str(run_id) / name

    # ---- triggers
    def on_push(self, before: str, after: str, branch: str = "main") -> list[Run]:
        """Every workflow of the pushed commit whose `on: push` filters match the push, run in file order."""
        changed = self.remote.changed(before, after)
        runs = []
        for name in self.remote.files(after, ".github/workflows"):
            document = yaml.safe_load(self.remote.read(after, f".github/workflows/{name}"))
            trigger = _triggers(document).get("push", "absent")
            if trigger == "absent" or not _push_matches(trigger or {}, branch, changed):
                continue
            runs.append(self.run(name, "push", after, before=before))
        return runs

    # ---- runs
    def run(self, workflow: str, event_name: str, sha: str, *, before: str | None = None,
            ref: str = "refs/heads/main", dispatch_inputs: dict[str, str] | None = None) -> Run:
        """One run of .github/workflows/`workflow` as of commit `sha`."""
        with self._lock:
            run_id = next(self._run_ids)
        started = time.monotonic()
        run = Run(run_id, workflow, event_name, sha)
        run_dir = self.root / "runs" / str(run_id)
        run_dir.mkdir(parents=True)
        document = yaml.safe_load(self.remote.read(sha, f".github/workflows/{workflow}"))
        github = {
            "event_name": event_name, "sha": sha, "ref": ref, "ref_name": ref.rsplit("/", 1)[-1],
            "run_id": str(run_id), "run_number": str(run_id), "repository": self.repository,
            "repository_owner": self.repository.split("/")[0], "actor": "a-person", "token": "ghs-standin-token",
            "server_url": "https://github.com", "workflow": document.get("name", workflow),
            "event": {"before": before, "after": sha, "repository": {"default_branch": "main"},
                      "inputs": dispatch_inputs or {}},
        }
        context = {"github": github, "vars": dict(self.variables), "secrets": dict(self.secrets),
                   "inputs": dispatch_inputs or {}, "runner": {"os": "Linux"}, "env": dict(document.get("env") or {})}
        permissions = document.get("permissions")
        self._run_jobs(run, run_dir, "", document["jobs"], context, permissions, source=(self.remote, sha))
        run.seconds = time.monotonic() - started
        return run

    def _run_jobs(self, run: Run, run_dir: Path, prefix: str, jobs: dict[str, dict], context: dict[str, Any],
                  workflow_permissions: object, source: tuple[Remote, str]) -> dict[str, JobResult]:
        results: dict[str, JobResult] = {}
        pending = list(jobs)
        with ThreadPoolExecutor(max_workers=self.parallel_jobs) as pool:
            running: dict[Any, str] = {}
            while pending or running:
                for name in list(pending):
                    needs = jobs[name].get("needs", [])
                    needs = [needs] if isinstance(needs, str) else list(needs)
                    if not all(need in results for need in needs):
                        continue
                    pending.remove(name)
                    needs_context = {need: {"outputs": results[need].outputs, "result": results[need].conclusion}
                                     for need in needs}
                    status = {"success": all(results[n].conclusion == "success" for n in needs),
                              "failure": any(results[n].conclusion == "failure" for n in needs)}
                    job_context = context | {"needs": needs_context}
                    key = f"{prefix}{name}"
                    if not condition_holds(jobs[name].get("if"), job_context, status):
                        results[name] = run.jobs[key] = JobResult(key, "skipped")
                        continue
                    permissions = jobs[name].get("permissions", workflow_permissions)
                    running[pool.submit(self._run_job, run, run_dir, key, jobs[name], job_context, permissions,
                                        source)] = name
                if running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        name = running.pop(future)
                        results[name] = future.result()
                elif pending:
                    raise AssertionError(f"jobs {pending} need jobs that do not exist")
        return results

    def _run_job(self, run: Run, run_dir: Path, key: str, job: dict, context: dict[str, Any],
                 permissions: object, source: tuple[Remote, str]) -> JobResult:
        if "uses" in job:
            return self._call_reusable(run, run_dir, key, job, context, permissions, source)
        result = self._run_steps(run, run_dir, key, job, context)
        run.jobs[key] = result
        return result

    def _resolve(self, uses: str, source: tuple[Remote, str]) -> tuple[Remote, str, str]:
        if uses.startswith(("$/", "./")):
            remote, commit = source
            return remote, commit, uses[2:]
        match = re.fullmatch(r"([\w.-]+/[\w.-]+)/(\.github/workflows/[\w.-]+)@([0-9a-f]{40})", uses)
        assert match, f"{uses}: a reusable workflow of another repository must be pinned to a commit"
        repository, path, commit = match.groups()
        assert repository in self.shared, f"{repository} is not a repository of this stand-in"
        return self.shared[repository], commit, path

    def _call_reusable(self, run: Run, run_dir: Path, key: str, job: dict, context: dict[str, Any],
                       permissions: object, source: tuple[Remote, str]) -> JobResult:
        remote, commit, path = self._resolve(job["uses"], source)
        document = yaml.safe_load(remote.read(commit, path))
        declared = (document.get(True) or document.get("on"))["workflow_call"] or {}
        given = {name: interpolate(value, context) for name, value in (job.get("with") or {}).items()}
        unknown = set(given) - set(declared.get("inputs") or {})
        assert not unknown, f"{key}: {path} has no inputs {unknown}"
        inputs = {}
        for name, spec in (declared.get("inputs") or {}).items():
            if name not in given and spec.get("required"):
                raise AssertionError(f"{key}: input {name} of {path} is required")
            value = given.get(name, spec.get("default"))
            inputs[name] = truthy(value) if spec.get("type") == "boolean" and isinstance(value, str) else value
        passed = job.get("secrets") or {}
        secrets = dict(context["secrets"]) if passed == "inherit" else {
            name: to_string(interpolate(value, context)) for name, value in passed.items()}
        for name, spec in (declared.get("secrets") or {}).items():
            if spec and spec.get("required") and not secrets.get(name):
                raise AssertionError(f"{key}: secret {name} of {path} is required")
        for inner_name, inner in document["jobs"].items():
            _check_permissions(f"{key}/{inner_name}", inner.get("permissions", document.get("permissions")),
                               permissions)
        inner_context = {"github": context["github"], "vars": context["vars"], "secrets": secrets,
                         "inputs": inputs, "runner": context["runner"], "env": dict(document.get("env") or {})}
        results = self._run_jobs(run, run_dir, f"{key}/", document["jobs"], inner_context,
                                 document.get("permissions"), (remote, commit))
        jobs_context = {name: {"outputs": r.outputs, "result": r.conclusion} for name, r in results.items()}
        outputs = {name: to_string(interpolate(spec["value"], {"jobs": jobs_context} | inner_context))
                   for name, spec in (declared.get("outputs") or {}).items()}
        conclusion = "failure" if any(r.conclusion == "failure" for r in results.values()) else "success"
        result = JobResult(key, conclusion, outputs)
        run.jobs[key] = result
        return result

    def _run_steps(self, run: Run, run_dir: Path, key: str, job: dict, context: dict[str, Any]) -> JobResult:
        started = time.monotonic()
        job_dir = Path(tempfile.mkdtemp(dir=run_dir, prefix=re.sub(r"\W+", "-", key)[:40] + "-"))
        work, temp = job_dir / "work", job_dir / "temp"
        work.mkdir()
        temp.mkdir()
        result = JobResult(key, "success")
        if job.get("environment"):
            environment = job["environment"]
            name = environment["name"] if isinstance(environment, dict) else environment
            result.environment = to_string(interpolate(name, context))
            with self._lock:
                self.approvals.append((run.run_id, key, result.environment))
        steps_context: dict[str, Any] = {}
        path_prefix: list[str] = [str(self.bin)]
        exported: dict[str, str] = {}
        base = dict(self.env) | {
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(work), "RUNNER_TEMP": str(temp),
            "RUNNER_OS": "Linux", "GITHUB_RUN_ID": str(run.run_id), "GITHUB_REPOSITORY": self.repository,
            "GITHUB_SERVER_URL": "https://github.com", "GITHUB_SHA": context["github"]["sha"],
            "GITHUB_REF": context["github"]["ref"], "GITHUB_EVENT_NAME": run.event_name,
            "GITHUB_ACTOR": "a-person", "STANDIN_GITHUB": str(self.root), "STANDIN_REMOTE": str(self.remote.path),
            "STANDIN_DOCKER_STATE": str(job_dir / "docker"), "STANDIN_REGISTRY_LOG": str(self.registry_log),
        }

        def step_context() -> dict[str, Any]:
            env = {k: to_string(v) for k, v in (context["env"] | exported).items()}
            return context | {"steps": steps_context, "env": env, "_workspace": str(work),
                              "runner": context["runner"] | {"temp": str(temp)}}

        job_env = {name: to_string(interpolate(value, step_context()))
                   for name, value in (job.get("env") or {}).items()}
        context = context | {"env": dict(context["env"]) | job_env}
        for index, step in enumerate(job.get("steps") or []):
            name = to_string(interpolate(step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0],
                                         step_context()))
            status = {"success": result.conclusion == "success", "failure": result.conclusion == "failure"}
            if not condition_holds(step.get("if"), step_context(), status):
                result.steps.append(StepResult(name, "skipped", ""))
                if step.get("id"):
                    steps_context[step["id"]] = {"outcome": "skipped", "conclusion": "skipped", "outputs": {}}
                continue
            log: list[str] = []
            outputs: dict[str, str] = {}
            try:
                env_values = {k: to_string(interpolate(v, step_context())) for k, v in (step.get("env") or {}).items()}
                env = base | {k: to_string(v) for k, v in context["env"].items()} | exported | env_values
                env["PATH"] = os.pathsep.join([*reversed(path_prefix), self.env["PATH"]])
                if "run" in step:
                    ok = self._shell(step["run"], work, temp, index, env, log, outputs, exported, path_prefix,
                                     result)
                else:
                    inputs = {k: interpolate(v, step_context()) for k, v in (step.get("with") or {}).items()}
                    ok = self._action(step["uses"], inputs, run, work, temp, env, log, outputs, path_prefix)
            except (AssertionError, OSError, subprocess.SubprocessError, RuntimeError) as error:
                log.append(f"{type(error).__name__}: {error}\n")
                ok = False
            outcome = "success" if ok else "failure"
            result.steps.append(StepResult(name, outcome, "".join(log)))
            if step.get("id"):
                steps_context[step["id"]] = {"outcome": outcome, "conclusion": outcome, "outputs": outputs}
            if not ok:
                result.conclusion = "failure"
        result.outputs = {name: to_string(interpolate(value, step_context()))
                          for name, value in (job.get("outputs") or {}).items()}
        result.seconds = time.monotonic() - started
        return result

    def _shell(self, script: str, work: Path, temp: Path, index: int, env: dict[str, str], log: list[str],
               outputs: dict[str, str], exported: dict[str, str], path_prefix: list[str], result: JobResult) -> bool:
        files = {name: temp / f"{name.lower()}-{index}" for name in
                 ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")}
        for variable, path in files.items():
            path.write_text("")
            env[variable] = str(path)
        script_file = temp / f"step-{index}.sh"
        script_file.write_text(script)
        status, output = _run_script(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)], work,
                                     env, log)
        outputs.update(_read_key_values(files["GITHUB_OUTPUT"].read_text()))
        exported.update(_read_key_values(files["GITHUB_ENV"].read_text()))
        path_prefix.extend(line for line in files["GITHUB_PATH"].read_text().splitlines() if line)
        result.summary += files["GITHUB_STEP_SUMMARY"].read_text()
        result.annotations += re.findall(r"^(::(?:error|warning|notice)\b.*)$", output, re.M)
        return status == 0

    def _action(self, uses: str, inputs: dict[str, Any], run: Run, work: Path, temp: Path, env: dict[str, str],
                log: list[str], outputs: dict[str, str], path_prefix: list[str]) -> bool:
        action = uses.split("@")[0]
        if action == "actions/checkout":
            ref = to_string(inputs.get("ref")) or run.sha
            depth = int(_number(inputs.get("fetch-depth", 1)))
            shutil.rmtree(work)
            work.mkdir()
            git(work, "init", "-q")
            git(work, "remote", "add", "origin", self.remote.url)
            if depth == 0:
                git(work, "fetch", "-q", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*", timeout=300)
                target = f"origin/{ref}" if self.remote.has_branch(ref) else ref
                git(work, "checkout", "-q", "--detach", target)
            else:
                git(work, "fetch", "-q", f"--depth={depth}", "origin", ref, timeout=300)
                git(work, "checkout", "-q", "--detach", "FETCH_HEAD")
            log.append(f"checked out {ref} at {git(work, 'rev-parse', 'HEAD').strip()} (depth {depth or 'all'})\n")
            return True
        if action == "actions/setup-python":
            version_file = to_string(inputs.get("python-version-file"))
            if not to_string(inputs.get("python-version")) and version_file and not (work / version_file).is_file():
                log.append(f"The specified python version file at: {work / version_file} does not exist\n")
                return False
            dependency_path = to_string(inputs.get("cache-dependency-path"))
            if inputs.get("cache") and dependency_path and not list(work.glob(dependency_path)):
                log.append(f"No file in {work} matched to [{dependency_path}]\n")
                return False
            path_prefix.append(str(self.python.parent))
            version = subprocess.run([str(self.python), "-c", "import platform; print(platform.python_version())"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            outputs["python-version"] = version
            log.append(f"python {version} from {self.python.parent}, first on PATH\n")
            return True
        if action == "actions/cache":
            outputs["cache-hit"] = "false"
            log.append("cache: cold (nothing restored or kept)\n")
            return True
        if action == "actions/upload-artifact":
            return self._upload(inputs, run, work, log)
        if action == "actions/download-artifact":
            return self._download(inputs, run, work, log)
        if action == "docker/login-action":
            registry, username = to_string(inputs.get("registry")), to_string(inputs.get("username"))
            if not (registry and username and to_string(inputs.get("password"))):
                log.append(f"login to {registry!r} needs a registry, a username and a password\n")
                return False
            state = Path(env["STANDIN_DOCKER_STATE"])
            state.mkdir(parents=True, exist_ok=True)
            logins = state / "logins.json"
            known = json.loads(logins.read_text()) if logins.exists() else []
            logins.write_text(json.dumps([*known, registry]))
            log.append(f"logged in to {registry} as {username}\n")
            return True
        raise AssertionError(f"the runner has no stand-in for the action {uses}")

    def _upload(self, inputs: dict[str, Any], run: Run, work: Path, log: list[str]) -> bool:
        name = to_string(inputs.get("name")) or "artifact"
        if re.search(r'[":<>|*?\r\n\\/]', name):
            log.append(f"The artifact name is not valid: {name}\n")
            return False
        destination = self.artifact(run.run_id, name)
        with self._lock:
            if destination.exists():
                log.append(f"an artifact with the name {name} already exists in this run\n")
                return False
            destination.mkdir(parents=True)
        pattern = to_string(inputs.get("path"))
        base = Path(pattern) if Path(pattern).is_absolute() else work / pattern
        if base.is_dir():
            copied = _copy_matches(base, "**/*", destination)
        else:
            copied = _copy_matches(base.parent, base.name, destination)
        if not copied:
            how = to_string(inputs.get("if-no-files-found")) or "warn"
            log.append(f"No files were found with the provided path: {pattern} ({how})\n")
            destination.rmdir()
            return how != "error"
        log.append(f"uploaded {name}: {[str(p.relative_to(destination)) for p in copied]}\n")
        return True

    def _download(self, inputs: dict[str, Any], run: Run, work: Path, log: list[str]) -> bool:
        name = to_string(inputs.get("name"))
        run_id = to_string(inputs.get("run-id")) or str(run.run_id)
        if run_id != str(run.run_id) and not to_string(inputs.get("github-token")):
            log.append("run-id of another run needs github-token\n")
            return False
        source = self.artifact(int(run_id) if run_id.isdigit() else -1, name)
        if not name or not source.is_dir():
            log.append(f"Unable to download artifact(s): Artifact not found for name: {name} in run {run_id}\n")
            return False
        path = to_string(inputs.get("path"))
        destination = (Path(path) if Path(path).is_absolute() else work / path) if path else work
        copied = _copy_matches(source, "**/*", destination)
        log.append(f"downloaded {name} of run {run_id}: {[str(p.relative_to(destination)) for p in copied]}\n")
        return True


def _read_key_values(text: str) -> dict[str, str]:
    values, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def _check_permissions(job: str, asked: object, allowed: object) -> None:
    """GitHub refuses a run whose called job asks for more than its caller grants (even when the job would skip)."""

    def levels(permissions: object) -> dict[str, int]:
        if permissions in (None, "read-all"):
            return {"*": 1} if permissions == "read-all" else {"*": 2}
        if permissions == "write-all":
            return {"*": 2}
        return {scope: PERMISSION_LEVELS[level] for scope, level in (permissions or {}).items()}

    asked_levels, allowed_levels = levels(asked), levels(allowed)
    for scope, level in asked_levels.items():
        granted = allowed_levels.get(scope, allowed_levels.get("*", 0))
        if level > granted:
            raise AssertionError(f"The nested job '{job}' is requesting '{scope}: {asked}', but is only allowed "
                                 f"'{scope}: {granted}'")


def _triggers(document: dict) -> dict[str, Any]:
    trigger = document.get(True, document.get("on"))
    if isinstance(trigger, str):
        return {trigger: None}
    if isinstance(trigger, list):
        return dict.fromkeys(trigger)
    return dict(trigger)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    regex = "".join({"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part)) for part in parts)
    return re.compile(regex + r"\Z")


def _push_matches(filters: dict[str, Any], branch: str, changed: list[str]) -> bool:
    branches = filters.get("branches")
    if branches and not any(_glob_regex(b).match(branch) for b in branches):
        return False
    if "paths" in filters:
        return any(_glob_regex(p).match(path) for p in filters["paths"] for path in changed)
    if "paths-ignore" in filters:
        return any(not any(_glob_regex(p).match(path) for p in filters["paths-ignore"]) for path in changed)
    return True


# ---------------------------------------------------------------------------------------------------- Jenkins


class StepFailed(Exception):
    """A step failed: the stage fails (or turns unstable inside catchError)."""


class _Return(Exception):
    def __init__(self, value: object) -> None:
        self.value = value


@dataclass
class StageRecord:
    name: str
    result: str
    log: str = ""
    seconds: float = 0.0


@dataclass
class Build:
    number: int
    kind: str
    sha: str
    result: str = "SUCCESS"
    stages: dict[str, StageRecord] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def digest(self) -> str:
        lines = [f"build #{self.number} ({self.kind}): {self.result}"]
        for name, stage in self.stages.items():
            lines.append(f"  {name}: {stage.result}")
            if stage.result == "FAILURE":
                lines.append(_without_noise(stage.log)[-5000:])
        return "\n".join(lines)


@dataclass
class _Agent:
    workspace: Path
    env: dict[str, str]


class Jenkins:
    """The stand-in for a Jenkins controller with a multibranch job on one repository and Linux agents."""

    def __init__(self, root: Path, remote: Remote, python: Path, env: dict[str, str],
                 credentials: dict[str, dict[str, str]], job_name: str = "event-service/main") -> None:
        self.root = root
        self.remote = remote
        self.python = python
        self.env = env
        self.credentials = credentials
        self.job_name = job_name
        self.bin = write_standins(root / "bin")
        self.builds: list[Build] = []
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._last_sha: dict[str, str] = {}

    def archive(self, number: int) -> Path:
        return self.root / "builds" / str(number) / "archive"

    def build(self, kind: str, sha: str, *, branch: str = "main", overrides: dict[str, object] | None = None,
              on_input: Callable[[str, str], str] | None = None) -> Build:
        """One build of the pipeline at `sha`: kind is pull_request, push or schedule (the timer on main)."""
        started = time.monotonic()
        number = len(self.builds) + 1
        build = Build(number, kind, sha)
        self.builds.append(build)
        previous = self._last_sha.get(branch)
        changelog = [] if previous is None or previous == sha else git(
            self.remote.path, "log", "--format=%B%x00", f"{previous}..{sha}").split("\0")
        self._last_sha[branch] = sha
        library = _Library(self.remote, sha)
        settings = library.settings(overrides or {})
        build.env.update({"BUILD_NUMBER": str(number), "JOB_NAME": self.job_name, "BRANCH_NAME": branch,
                          "BUILD_URL": f"https://jenkins.example.com/job/{self.job_name}/{number}/"})
        state = _BuildState(self, build, library, settings, kind, branch, [m.strip() for m in changelog if m.strip()],
                            on_input or (lambda stage, message: pytest.fail(f"unexpected input at {stage}")))
        pipeline = find_pipeline(parse_groovy(library.source("eventServicePipeline")))
        state.run_stages(pipeline.child("stages"), agent=None, prefix="")
        build.seconds = time.monotonic() - started
        return build

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


class _Library:
    """The shared library as of the build's commit (legacySCM: the same checkout as the Jenkinsfile)."""

    def __init__(self, remote: Remote, sha: str) -> None:
        self.remote = remote
        self.sha = sha
        self.vars = {name.removesuffix(".groovy") for name in remote.files(sha, "jenkins/vars")}
        self._parsed: dict[str, tuple[list[str], list[Statement]]] = {}

    def source(self, name: str) -> str:
        return self.remote.read(self.sha, f"jenkins/vars/{name}.groovy")

    def settings(self, overrides: dict[str, object]) -> dict[str, object]:
        text = self.source("pipelineSettings")
        defaults: dict[str, object] = {}
        for key, value in re.findall(r"^\s*(\w+):\s*('[^']*'|\d+),", text, re.M):
            defaults[key] = value.strip("'") if value.startswith("'") else int(value)
        unknown = set(overrides) - set(defaults)
        if unknown:
            raise StepFailed(f"eventServicePipeline: unknown settings {unknown}")
        return defaults | overrides

    def function(self, name: str) -> tuple[list[str], list[Statement]]:
        if name not in self._parsed:
            for statement in parse_groovy(self.source(name)):
                match = re.match(r"call\s*\(([^)]*)\)", statement.header)
                if match and statement.block is not None:
                    parameters = [part.split("=")[0].split()[-1] for part in match.group(1).split(",") if part.strip()]
                    self._parsed[name] = (parameters, statement.block)
                    break
            else:
                raise AssertionError(f"jenkins/vars/{name}.groovy has no call(...) {{ }}")
        return self._parsed[name]


def _split_top(text: str, separator: str = ",") -> list[str]:
    parts, depth, current, quote = [], 0, [], None
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            current.append(char)
            if char == "\\":
                current.append(text[index + 1])
                index += 1
            elif text.startswith(quote, index):
                current.extend(quote[1:])
                index += len(quote) - 1
                quote = None
        elif text.startswith("'''", index) or text.startswith('"""', index):
            quote = text[index:index + 3]
            current.extend(quote)
            index += 2
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char in "([{":
            depth += 1
            current.append(char)
        elif char in ")]}":
            depth -= 1
            current.append(char)
        elif char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _unwrap(text: str) -> str:
    text = text.strip()
    if text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        return text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    return len(_split_top(text + ",x", ",")) >= 1 and text.count("(") == text.count(")")


def _groovy_string(literal: str) -> str:
    """The value of a single-quoted Groovy string literal (escapes processed as Groovy does)."""
    quote = "'''" if literal.startswith("'''") else "'"
    body = literal[len(quote):-len(quote)]
    # a backslash before a newline joins the lines (Groovy's line continuation), the others escape one character
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\n": ""}.get(m.group(1), m.group(1)), body, flags=re.S)


_CREDENTIAL_BINDINGS = {"sshUserPrivateKey", "file", "gitUsernamePassword", "usernamePassword", "string"}


class _BuildState:
    def __init__(self, jenkins: Jenkins, build: Build, library: _Library, settings: dict[str, object], kind: str,
                 branch: str, changelog: list[str], on_input: Callable[[str, str], str]) -> None:
        self.jenkins = jenkins
        self.build = build
        self.library = library
        self.settings = settings
        self.kind = kind
        self.branch = branch
        self.changelog = changelog
        self.on_input = on_input
        self.stashes = jenkins.root / "builds" / str(build.number) / "stashes"
        self.env_lock = threading.Lock()

    # ---- stages
    def run_stages(self, stages: Statement, agent: _Agent | None, prefix: str, parallel: bool = False) -> None:
        children = stages.children("stage")
        if parallel:
            with ThreadPoolExecutor(max_workers=len(children)) as pool:
                list(pool.map(lambda stage: self.run_stage(stage, agent, prefix), children))
            return
        for stage in children:
            self.run_stage(stage, agent, prefix)

    def run_stage(self, stage: Statement, agent: _Agent | None, prefix: str) -> None:
        name = _groovy_string(_unwrap(stage.header))
        record = StageRecord(prefix + name, "SUCCESS")
        self.build.stages[record.name] = record
        started = time.monotonic()
        log: list[str] = []
        if self.build.result == "FAILURE" or not self.when_holds(stage.child("when")):
            record.result = "SKIPPED"
            return
        input_block = stage.child("input")
        if input_block is not None:
            message = self.value(input_block.child("message").header, {})
            approver = self.on_input(name, str(message))
            self.build.inputs.append(name)
            parameter = input_block.child("submitterParameter")
            if parameter is not None:
                with self.env_lock:
                    self.build.env[str(self.value(parameter.header, {}))] = approver
        if stage.child("agent") is not None:
            agent = self.new_agent(record.name)
        options = stage.child("options")
        lock = options.child("lock") if options is not None else None
        held = None
        if lock is not None:
            resource = self.arguments(lock.header, {})[1]["resource"]
            held = self.jenkins.lock(str(resource))
            held.acquire()
        failed = False
        try:
            for work in ("steps", "stages", "parallel"):
                block = stage.child(work)
                if block is None:
                    continue
                if work == "steps":
                    self.steps(block.block or [], agent, {}, log, record)
                else:
                    self.run_stages(block, agent, prefix + name + " / ", parallel=work == "parallel")
                    inner = [s for n, s in self.build.stages.items() if n.startswith(prefix + name + " / ")]
                    failed = any(s.result == "FAILURE" for s in inner)
        except StepFailed as error:
            log.append(f"ERROR: {error}\n")
            failed = True
        if failed:
            record.result = "FAILURE"
            self.build.result = "FAILURE"
        post = stage.child("post")
        if post is not None:
            conditions = ["always"] + (["failure"] if failed else ["success"])
            if record.result == "UNSTABLE":
                conditions.append("unstable")
            for condition in conditions:
                block = post.child(condition)
                if block is None:
                    continue
                try:
                    self.steps(block.block or [], agent, {}, log, record)
                except StepFailed as error:
                    log.append(f"ERROR (post {condition}): {error}\n")
                    record.result = "FAILURE"
                    self.build.result = "FAILURE"
        if held is not None:
            held.release()
        record.log = "".join(log)
        record.seconds = time.monotonic() - started

    def require_agent(self, agent: _Agent | None, stage: str) -> None:
        if agent is None:
            raise StepFailed(f"{stage}: steps need an agent (the pipeline has `agent none`)")

    def new_agent(self, stage: str) -> _Agent:
        """A fresh workspace on an agent: the multibranch checkout of this build's commit, nothing else in it."""
        workspace = Path(tempfile.mkdtemp(dir=self.jenkins.root, prefix=f"ws-{self.build.number}-"
                                          f"{re.sub(r'[^A-Za-z0-9]+', '-', stage)[:30]}-"))
        git(workspace, "clone", "-q", str(self.jenkins.remote.path), ".", timeout=300)
        git(workspace, "checkout", "-q", "--detach", self.build.sha)
        env = dict(self.jenkins.env) | {
            "WORKSPACE": str(workspace), "STANDIN_DOCKER_STATE": str(workspace.parent / f"{workspace.name}.docker"),
            "STANDIN_REGISTRY_LOG": str(self.jenkins.root / "registry.jsonl"),
            "PATH": os.pathsep.join([str(self.jenkins.bin), str(self.jenkins.python.parent), self.jenkins.env["PATH"]]),
        }
        return _Agent(workspace, env)

    def when_holds(self, when: Statement | None) -> bool:
        return when is None or all(self.condition(c) for c in when.block or [])

    def condition(self, condition: Statement) -> bool:
        name = condition.name
        if name in ("beforeAgent", "beforeInput", "beforeOptions"):
            return True
        if name == "not":
            return not all(self.condition(c) for c in condition.block or [])
        if name == "allOf":
            return all(self.condition(c) for c in condition.block or [])
        if name == "anyOf":
            return any(self.condition(c) for c in condition.block or [])
        if name == "branch":
            return fnmatch.fnmatchcase(self.branch, str(self.value(condition.header, {})))
        if name == "triggeredBy":
            return self.kind == "schedule" and "TimerTrigger" in condition.header
        if name == "changelog":
            pattern = str(self.value(condition.header, {}))
            return any(re.fullmatch(pattern, message, re.S) for message in self.changelog)
        raise AssertionError(f"line {condition.line}: the runner has no model of `when {{ {name} }}`")

    # ---- steps and values
    def steps(self, statements: Iterable[Statement], agent: _Agent | None, scope: dict[str, object],
              log: list[str], record: StageRecord, body: Callable[[dict[str, str]], None] | None = None) -> None:
        statements = list(statements)
        index = 0
        while index < len(statements):
            statement = statements[index]
            following = statements[index + 1] if index + 1 < len(statements) else None
            if statement.name == "try" and following is not None and following.name == "finally":
                try:
                    self.steps(statement.block or [], agent, scope, log, record, body)
                finally:
                    self.steps(following.block or [], agent, scope, log, record, body)
                index += 2
                continue
            self.step(statement, agent, scope, log, record, body)
            index += 1

    def step(self, statement: Statement, agent: _Agent | None, scope: dict[str, object], log: list[str],
             record: StageRecord, body: Callable[[dict[str, str]], None] | None) -> None:
        name, header = statement.name, statement.header
        full = f"{name} {header}".strip()
        assignment = re.match(r"^(?:(?:String|def|Map|int|boolean)\s+)?([A-Za-z_][\w.]*)\s*=\s*(?!=)(.+)$", full, re.S)
        if name == "script":
            self.steps(statement.block or [], agent, scope, log, record, body)
        elif name == "if":
            if truthy(self.value(_unwrap(header), scope, agent, log)):
                self.steps(statement.block or [], agent, scope, log, record, body)
        elif name == "body":
            assert body is not None, "body() outside a closure"
            body(dict(scope.get("_env", {})))  # withEnv and withCredentials bind for everything run inside them
        elif name == "return":
            raise _Return(self.value(header, scope, agent, log))
        elif assignment and name not in ("echo", "error", "sh"):
            target, expression = assignment.groups()
            value = self.value(expression, scope, agent, log)
            if target.startswith("env."):
                with self.env_lock:
                    self.build.env[target[4:]] = to_string(value)
            else:
                scope[target] = value
        elif name == "withEnv":
            (pairs,), _ = self.arguments(header, scope, agent, log)
            added = dict(str(pair).split("=", 1) for pair in pairs)
            self.steps(statement.block or [], agent, scope | {"_env": dict(scope.get("_env", {})) | added}, log,
                       record, body)
        elif name == "withCredentials":
            (bindings,), _ = self.arguments(header, scope, agent, log)
            added = {}
            for binding in bindings:
                added.update(self.bind(binding, agent))
            self.steps(statement.block or [], agent, scope | {"_env": dict(scope.get("_env", {})) | added}, log,
                       record, body)
        elif name == "catchError":
            _, options = self.arguments(header, scope, agent, log)
            try:
                self.steps(statement.block or [], agent, scope, log, record, body)
            except StepFailed as error:
                log.append(f"catchError: {error}; stage {options.get('stageResult')}: {options.get('message')}\n")
                record.result = str(options.get("stageResult", "FAILURE"))
                if options.get("buildResult", "FAILURE") == "FAILURE":
                    raise
        else:
            self.value(full, scope, agent, log, block=statement.block, record=record, body=body)

    def arguments(self, header: str, scope: dict[str, object], agent: _Agent | None = None,
                  log: list[str] | None = None) -> tuple[list[object], dict[str, object]]:
        positional, named = [], {}
        for part in _split_top(_unwrap(header)):
            match = re.match(r"^([A-Za-z_]\w*)\s*:\s*(.+)$", part, re.S)
            if match and not part.startswith(("'", '"')):
                named[match.group(1)] = self.value(match.group(2), scope, agent, log)
            else:
                positional.append(self.value(part, scope, agent, log))
        return positional, named

    def value(self, text: str, scope: dict[str, object], agent: _Agent | None = None, log: list[str] | None = None,
              block: list[Statement] | None = None, record: StageRecord | None = None,
              body: Callable[[dict[str, str]], None] | None = None) -> object:
        """A Groovy expression or step call, as far as the pipeline and its library use them."""
        text = text.strip()
        log = log if log is not None else []
        if text.startswith(("'''", "'")) and _split_top(text) == [text] and text.endswith("'"):
            return _groovy_string(text)
        if text.startswith('"') and text.endswith('"'):
            return re.sub(r"\$\{([^}]*)\}", lambda m: to_string(self.value(m.group(1), scope, agent, log)), text[1:-1])
        if re.fullmatch(r"\d+", text):
            return int(text)
        if text in ("true", "false"):
            return text == "true"
        if text.startswith("!"):
            return not truthy(self.value(text[1:], scope, agent, log))
        comparison = _split_top(text, "=")
        if " == " in text and len(comparison) == 3 and comparison[1] == "":
            return to_string(self.value(comparison[0], scope, agent, log)) == to_string(
                self.value(comparison[2], scope, agent, log))
        if text.startswith("[") and text.endswith("]"):
            inner = text[1:-1].strip()
            if inner == ":":
                return {}
            items = _split_top(inner)
            if items and all(re.match(r"^\w+\s*:", item) for item in items):
                return {k.strip(): self.value(v, scope, agent, log) for k, v in (i.split(":", 1) for i in items)}
            return [self.value(item, scope, agent, log) for item in items]
        method = re.fullmatch(r"(.+)\.(trim|tokenize)\(([^()]*)\)(\[\d+\])?", text, re.S)
        if method:
            target = to_string(self.value(method.group(1), scope, agent, log))
            if method.group(2) == "trim":
                return target.strip()
            separator = str(self.value(method.group(3), scope, agent, log))
            parts = [p for p in re.split("[" + re.escape(separator) + "]", target) if p]
            return parts[int(method.group(4)[1:-1])] if method.group(4) else parts
        call = re.fullmatch(r"([A-Za-z_]\w*)\s*(\(.*\)|\s+.+)?", text, re.S)
        if call and (call.group(2) is not None or text in self.library.vars or text == "body"):
            return self.call(call.group(1), call.group(2) or "()", scope, agent, log, block, record, body)
        dotted = re.fullmatch(r"([A-Za-z_]\w*)((?:\.\w+)*)", text)
        if dotted:
            head, rest = dotted.group(1), [p for p in dotted.group(2).split(".") if p]
            if head == "settings" and len(rest) <= 1:
                return self.settings_value(rest[0]) if rest else self.settings
            if head == "env" and len(rest) == 1:
                with self.env_lock:
                    return self.build.env.get(rest[0], os.environ.get(rest[0]) if rest[0] == "PATH" else None)
            if not rest:
                if head in scope:
                    return scope[head]
                with self.env_lock:
                    if head in self.build.env:
                        return self.build.env[head]
            if head in scope and isinstance(scope[head], dict) and len(rest) == 1:
                return scope[head].get(rest[0])
        raise AssertionError(f"the runner cannot evaluate the Groovy `{text[:200]}`")

    def settings_value(self, name: str) -> object:
        if name not in self.settings:
            raise AssertionError(f"settings.{name} has no default in pipelineSettings.groovy")
        return self.settings[name]

    def call(self, name: str, arguments: str, scope: dict[str, object], agent: _Agent | None, log: list[str],
             block: list[Statement] | None, record: StageRecord | None,
             body: Callable[[dict[str, str]], None] | None) -> object:
        positional, named = self.arguments(arguments, scope, agent, log)
        record = record or StageRecord("?", "SUCCESS")
        if name in _CREDENTIAL_BINDINGS:
            return (name, named)
        if name == "makeTarget":
            return self.make_target(positional, scope, agent, log)
        if name in self.library.vars and name not in ("pipelineSettings", "eventServicePipeline"):
            parameters, statements = self.library.function(name)
            local = {"_env": scope.get("_env", {})} | dict(zip(parameters, positional, strict=False))
            closure = None
            if block is not None:
                def closure(bound: dict[str, str]) -> None:
                    inner = scope | {"_env": dict(scope.get("_env", {})) | bound}
                    self.steps(block, agent, inner, log, record, body)
            try:
                self.steps(statements, agent, local, log, record, closure)
            except _Return as returned:
                return returned.value
            return None
        if name == "sh":
            script = named.get("script", positional[0] if positional else None)
            return self.sh(str(script), agent, scope, log, bool(named.get("returnStdout")))
        if name == "echo":
            log.append(f"{positional[0]}\n")
            return None
        if name == "error":
            raise StepFailed(str(positional[0]))
        if name == "specific":
            return positional[0]
        self.require_agent(agent, record.name)
        assert agent is not None
        workspace = agent.workspace
        if name == "archiveArtifacts":
            pattern = str(named.get("artifacts", positional[0] if positional else ""))
            copied = _copy_matches(workspace, pattern, self.jenkins.archive(self.build.number))
            if not copied and not named.get("allowEmptyArchive"):
                raise StepFailed(f"No artifacts found that match the file pattern \"{pattern}\"")
            log.append(f"archived {len(copied)} files for {pattern}\n")
        elif name == "stash":
            stash = self.stashes / str(named["name"])
            if stash.exists():
                shutil.rmtree(stash)
            copied = _copy_matches(workspace, str(named["includes"]), stash)
            if not copied:
                raise StepFailed(f"No files included in stash '{named['name']}'")
            log.append(f"stashed {len(copied)} files as {named['name']}\n")
        elif name == "unstash":
            stash = self.stashes / str(positional[0] if positional else named["name"])
            if not stash.is_dir():
                raise StepFailed(f"No such saved stash '{stash.name}'")
            _copy_matches(stash, "**/*", workspace)
            log.append(f"unstashed {stash.name}\n")
        elif name == "junit":
            pattern = str(named.get("testResults", positional[0] if positional else ""))
            if not list(workspace.glob(pattern)) and not named.get("allowEmptyResults"):
                raise StepFailed(f"No test report files were found for {pattern}")
        elif name == "copyArtifacts":
            if named.get("projectName") != self.jenkins.job_name:
                raise StepFailed(f"copyArtifacts: no job {named.get('projectName')}")
            source = self.jenkins.archive(int(str(named["selector"])))
            copied = _copy_matches(source, str(named.get("filter", "**/*")), workspace) if source.is_dir() else []
            if not copied:
                raise StepFailed(f"Unable to find a build for artifact copy from build {named['selector']}")
            log.append(f"copied {[str(p.relative_to(workspace)) for p in copied]} from build {named['selector']}\n")
        else:
            raise AssertionError(f"the runner has no model of the step `{name}`")
        return None

    def make_target(self, positional: list[object], scope: dict[str, object], agent: _Agent | None,
                    log: list[str]) -> None:
        source = self.library.source("makeTarget")
        assert "shellQuote(value)" in source and "words.join(' ')" in source, "makeTarget changed: update the runner"
        target, variables = positional[0], positional[1] if len(positional) > 1 else {}
        words = ["make", str(target)] + [f"{k}={shlex.quote(to_string(v))}" for k, v in dict(variables).items()]
        self.sh(" ".join(words), agent, scope, log, False)

    def sh(self, script: str, agent: _Agent | None, scope: dict[str, object], log: list[str],
           return_stdout: bool) -> str:
        self.require_agent(agent, "sh")
        assert agent is not None
        with self.env_lock:
            build_env = dict(self.build.env)
        env = agent.env | build_env | {k: to_string(v) for k, v in dict(scope.get("_env", {})).items()}
        script_file = Path(tempfile.mkstemp(dir=self.jenkins.root, prefix="sh-", suffix=".sh")[1])
        script_file.write_text(script)
        log.append(f"+ sh {script.strip()[:300]}\n")
        status, output = _run_script(["sh", "-xe", str(script_file)], agent.workspace, env, log, return_stdout)
        if status != 0:
            raise StepFailed(f"script returned exit code {status}")
        return output

    def bind(self, binding: object, agent: _Agent | None) -> dict[str, str]:
        kind, options = binding  # type: ignore[misc]
        credential = self.jenkins.credentials.get(str(options["credentialsId"]))
        expected = {"sshUserPrivateKey": "ssh", "file": "file", "gitUsernamePassword": "usernamePassword",
                    "usernamePassword": "usernamePassword", "string": "string"}[kind]
        if credential is None or credential["kind"] != expected:
            raise StepFailed(f"Could not find credentials entry with ID '{options['credentialsId']}' ({expected})")
        if kind in ("sshUserPrivateKey", "file"):
            secret = Path(tempfile.mkstemp(dir=self.jenkins.root, prefix="secret-")[1])
            secret.write_text(credential["content"])
            secret.chmod(0o600)
            return {str(options["keyFileVariable" if kind == "sshUserPrivateKey" else "variable"]): str(secret)}
        if kind == "gitUsernamePassword":
            return {"GIT_USERNAME": credential["username"], "GIT_PASSWORD": credential["password"]}
        if kind == "usernamePassword":
            return {str(options["usernameVariable"]): credential["username"],
                    str(options["passwordVariable"]): credential["password"]}
        return {str(options["variable"]): credential["content"]}


# ------------------------------------------------------------------------------------- tests of the stand-ins


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("inputs.load-gate && !cancelled()", True),
        ("secrets.MISSING || github.actor", "a-person"),
        ("contains(fromJSON('[\"success\", \"failure\"]'), steps.deploy.outcome)", True),
        ("needs.deploy.outputs.previous-artifact-run != ''", False),
        ("github.event_name == 'PUSH'", True),
        ("format('{0}-{1}', 'wheel', 1)", "wheel-1"),
        ("!inputs.missing", True),
    ],
)
def test_expressions_follow_githubs_rules(expression, expected):
    context = {"inputs": {"load-gate": True}, "secrets": {}, "github": {"actor": "a-person", "event_name": "push"},
               "steps": {"deploy": {"outcome": "failure"}}, "needs": {"deploy": {"outputs": {}}}}
    assert evaluate(expression, context) == expected


def test_a_condition_without_a_status_function_implies_success():
    assert condition_holds("${{ true }}", {}, {"success": False, "failure": True}) is False
    assert condition_holds("${{ failure() && true }}", {}, {"success": False, "failure": True}) is True


def test_push_filters_follow_githubs_globs():
    promotion = ["deploy/environments/staging.yml"]
    assert not _push_matches({"branches": ["main"], "paths-ignore": ["deploy/environments/**"]}, "main", promotion)
    assert _push_matches({"branches": ["main"], "paths": ["deploy/environments/staging.yml"]}, "main", promotion)
    assert not _push_matches({"paths": ["deploy/environments/production.yml"]}, "main", promotion)
    assert _push_matches({"paths-ignore": ["deploy/environments/**"]}, "main", [*promotion, "src/app.py"])


def test_a_called_job_may_not_ask_more_than_its_caller_grants():
    with pytest.raises(AssertionError, match="packages"):
        _check_permissions("checks/build", {"contents": "read", "packages": "write"}, {"contents": "read"})
    _check_permissions("checks/build", {"contents": "read"}, {"contents": "read", "packages": "write"})


def test_groovy_values_the_library_uses(tmp_path):
    state = _BuildState.__new__(_BuildState)
    state.settings = {"defaultBranch": "main"}
    state.build = Build(1, "push", "0" * 40, env={"SERVICE_VERSION": "1.0"})
    state.env_lock = threading.Lock()
    state.library = type("L", (), {"vars": set()})()
    assert state.value("'a\\\\b'", {}) == "a\\b"
    assert state.value('"promote/${env.SERVICE_VERSION}"', {}) == "promote/1.0"
    assert state.value("[ENV: 'staging', N: 2]", {}) == {"ENV": "staging", "N": 2}
    assert state.value("env.SERVICE_VERSION == '1.0'", {}) is True
    assert state.value("image.tokenize('/')[0]", {"image": "ghcr.io/x/y"}) == "ghcr.io"
    assert state.value("!env.MISSING", {}) is True
