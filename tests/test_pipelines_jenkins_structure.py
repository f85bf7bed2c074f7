"""Structure check of the declarative Jenkins pipeline.

npm-groovy-lint checks Groovy syntax and style, but accepts a declarative pipeline that Jenkins would reject at
start (a `sh` straight in a `stage`, a stage with two kinds of work, an unknown `post` condition). No real Jenkins
runs here, so this module parses the `pipeline { ... }` block into a tree of `name args { block }` statements and
checks it against the rules of the declarative syntax, and that every step it calls is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JENKINS_DIR = ROOT / "pipelines" / "jenkins"
LIBRARY_VARS = JENKINS_DIR / "vars"

# Words a header line may end with when the statement goes on on the next line.
_CONTINUATION_ENDINGS = (",", "+", "-", "*", "/", "&&", "||", "?", ":", "=", "(", "[")


@dataclass
class Statement:
    """One Groovy statement: its first word, the rest of its header, and the block that follows, if any."""

    name: str
    header: str
    line: int
    block: list[Statement] | None = None

    def children(self, name: str) -> list[Statement]:
        return [child for child in self.block or [] if child.name == name]

    def child(self, name: str) -> Statement | None:
        found = self.children(name)
        return found[0] if found else None


@dataclass
class _Scanner:
    text: str
    pos: int = 0

    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def peek(self, length: int = 1) -> str:
        return self.text[self.pos : self.pos + length]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_string(self) -> str:
        """Consume a quoted string literal and return it whole."""
        start = self.pos
        for quote in ("'''", '"""', "'", '"'):
            if self.text.startswith(quote, self.pos):
                break
        self.pos += len(quote)
        while not self.at_end():
            if self.peek() == "\\":
                self.pos += 2
                continue
            if self.text.startswith(quote, self.pos):
                self.pos += len(quote)
                return self.text[start : self.pos]
            self.pos += 1
        raise SyntaxError(f"unterminated string starting at line {self.text.count(chr(10), 0, start) + 1}")

    def skip_comment(self) -> bool:
        if self.peek(2) == "//":
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end
            return True
        if self.peek(2) == "/*":
            end = self.text.find("*/", self.pos)
            if end < 0:
                raise SyntaxError("unterminated comment")
            self.pos = end + 2
            return True
        return False


def parse_groovy(text: str) -> list[Statement]:
    """Parse Groovy source into nested statements (enough of Groovy for declarative pipelines)."""
    scanner = _Scanner(text)
    statements = _parse_block(scanner)
    if not scanner.at_end():
        raise SyntaxError(f"unbalanced '}}' at line {scanner.line()}")
    return statements


def _parse_block(scanner: _Scanner) -> list[Statement]:
    statements: list[Statement] = []
    while True:
        while not scanner.at_end() and (scanner.peek() in " \t\r\n;" or scanner.skip_comment()):
            if scanner.peek() in " \t\r\n;":
                scanner.pos += 1
        if scanner.at_end() or scanner.peek() == "}":
            return statements
        statements.append(_parse_statement(scanner))


def _parse_statement(scanner: _Scanner) -> Statement:
    line = scanner.line()
    header: list[str] = []
    depth = 0
    while not scanner.at_end():
        char = scanner.peek()
        if char in "'\"":
            header.append(scanner.skip_string())
            continue
        if scanner.skip_comment():
            continue
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0 and char == "\n":
            if "".join(header).rstrip().endswith(_CONTINUATION_ENDINGS):
                scanner.pos += 1
                header.append(" ")
                continue
            break
        elif depth == 0 and char == "}":
            break
        elif depth == 0 and char == "{":
            scanner.pos += 1
            block = _parse_block(scanner)
            if scanner.peek() != "}":
                raise SyntaxError(f"block opened at line {line} is not closed")
            scanner.pos += 1
            return _statement(header, line, block)
        header.append(char)
        scanner.pos += 1
    if depth != 0:
        raise SyntaxError(f"unbalanced brackets in the statement at line {line}")
    return _statement(header, line, None)


def _statement(header: list[str], line: int, block: list[Statement] | None) -> Statement:
    text = "".join(header).strip()
    match = re.match(r"[A-Za-z_][\w.]*", text)
    name = match.group(0) if match else text[:1]
    return Statement(name=name, header=text[len(name) :].strip(), line=line, block=block)


def find_pipeline(statements: list[Statement]) -> Statement:
    """The `pipeline { }` block, wherever it is (a Jenkinsfile's top level or a library's `call`)."""
    for statement in statements:
        if statement.name == "pipeline" and statement.block is not None:
            return statement
        found = _find_in(statement.block or [])
        if found:
            return found
    raise LookupError("no `pipeline { }` block")


def _find_in(statements: list[Statement]) -> Statement | None:
    try:
        return find_pipeline(statements)
    except LookupError:
        return None


# The declarative syntax (jenkins.io/doc/book/pipeline/syntax), the parts this project may use.
PIPELINE_SECTIONS = {
    "agent",
    "environment",
    "options",
    "parameters",
    "triggers",
    "tools",
    "stages",
    "post",
    "libraries",
}
STAGE_SECTIONS = {"agent", "environment", "options", "when", "input", "post", "tools", "failFast"}
STAGE_WORK = {"steps", "parallel", "stages", "matrix"}
POST_CONDITIONS = {
    "always",
    "changed",
    "fixed",
    "regression",
    "aborted",
    "failure",
    "success",
    "unstable",
    "unsuccessful",
    "cleanup",
}
WHEN_CONDITIONS = {
    "branch",
    "buildingTag",
    "changelog",
    "changeset",
    "changeRequest",
    "environment",
    "equals",
    "expression",
    "tag",
    "not",
    "allOf",
    "anyOf",
    "triggeredBy",
    "beforeAgent",
    "beforeInput",
    "beforeOptions",
}
WHEN_NESTING = {"not", "allOf", "anyOf"}
INPUT_FIELDS = {"message", "id", "ok", "submitter", "submitterParameter", "parameters"}
AGENT_KINDS = {"label", "node", "docker", "dockerfile", "kubernetes"}
TRIGGERS = {"cron", "pollSCM", "upstream"}
OPTIONS = {
    "buildDiscarder",
    "checkoutToSubdirectory",
    "disableConcurrentBuilds",
    "disableResume",
    "durabilityHint",
    "lock",
    "newContainerPerStage",
    "overrideIndexTriggers",
    "parallelsAlwaysFailFast",
    "preserveStashes",
    "quietPeriod",
    "retry",
    "skipDefaultCheckout",
    "skipStagesAfterUnstable",
    "timeout",
    "timestamps",
    "ansiColor",
}
# Steps of Jenkins core and the plugins docs/pipelines.md lists; the library's own vars are added per check.
KNOWN_STEPS = {
    "archiveArtifacts",
    "bat",
    "catchError",
    "checkout",
    "cleanWs",
    "deleteDir",
    "dir",
    "echo",
    "error",
    "fingerprint",
    "git",
    "junit",
    "lock",
    "milestone",
    "readFile",
    "retry",
    "script",
    "sh",
    "sleep",
    "stash",
    "timeout",
    "unstable",
    "unstash",
    "warnError",
    "withCredentials",
    "withEnv",
    "writeFile",
}


def library_steps() -> set[str]:
    """Steps the shared library defines: one per vars/<name>.groovy."""
    return {path.stem for path in LIBRARY_VARS.glob("*.groovy")}


def check_pipeline(pipeline: Statement, known_steps: set[str]) -> list[str]:
    """Every way the pipeline breaks the declarative rules, as messages with line numbers (empty: valid)."""
    problems: list[str] = []
    _check_sections(pipeline, PIPELINE_SECTIONS, "pipeline", problems)
    for required in ("agent", "stages"):
        if len(pipeline.children(required)) != 1:
            problems.append(f"line {pipeline.line}: pipeline needs exactly one `{required}`")
    for section in pipeline.block or []:
        if section.name == "stages":
            _check_stages(section, known_steps, problems)
        elif section.name == "post":
            _check_post(section, known_steps, problems)
        elif section.name == "agent":
            _check_agent(section, problems)
        elif section.name == "triggers":
            _check_sections(section, TRIGGERS, "triggers", problems)
        elif section.name == "options":
            _check_sections(section, OPTIONS, "options", problems)
    return problems


def _check_sections(statement: Statement, allowed: set[str], where: str, problems: list[str]) -> None:
    for child in statement.block or []:
        if child.name not in allowed:
            problems.append(f"line {child.line}: `{child.name}` is not allowed in {where}")


def _check_stages(stages: Statement, known_steps: set[str], problems: list[str]) -> None:
    if not stages.block:
        problems.append(f"line {stages.line}: empty `stages`")
    for stage in stages.block or []:
        if stage.name != "stage" or stage.block is None or not stage.header.startswith("("):
            found = stage.name
            problems.append(f"line {stage.line}: `stages` may only hold `stage('name') {{ ... }}`, found `{found}`")
            continue
        _check_stage(stage, known_steps, problems)


def _check_stage(stage: Statement, known_steps: set[str], problems: list[str]) -> None:
    where = f"stage{stage.header}"
    _check_sections(stage, STAGE_SECTIONS | STAGE_WORK, where, problems)
    work = [child for child in stage.block or [] if child.name in STAGE_WORK]
    if len(work) != 1:
        found = ", ".join(child.name for child in work) or "none"
        problems.append(f"line {stage.line}: {where} needs exactly one of steps/parallel/stages/matrix, has {found}")
    for child in stage.block or []:
        if child.name == "steps":
            _check_steps(child, known_steps, problems)
        elif child.name in {"stages", "parallel"}:
            if child.name == "parallel" and stage.child("agent"):
                problems.append(f"line {stage.line}: {where} has `parallel`, so its agent belongs in each branch")
            _check_stages(child, known_steps, problems)
        elif child.name == "post":
            _check_post(child, known_steps, problems)
        elif child.name == "when":
            _check_when(child, problems)
        elif child.name == "input":
            _check_sections(child, INPUT_FIELDS, f"input of {where}", problems)
            if not child.child("message"):
                problems.append(f"line {child.line}: input of {where} needs a `message`")
        elif child.name == "agent":
            _check_agent(child, problems)
        elif child.name == "options":
            _check_sections(child, OPTIONS, f"options of {where}", problems)


def _check_steps(steps: Statement, known_steps: set[str], problems: list[str]) -> None:
    if not steps.block:
        problems.append(f"line {steps.line}: empty `{steps.name}` block")
    for step in steps.block or []:
        if step.name not in known_steps:
            problems.append(f"line {step.line}: unknown step `{step.name}`")
        elif step.block is not None and step.name != "script":
            # Wrappers (withCredentials, timeout, the library's with* steps) hold steps again.
            _check_steps(step, known_steps, problems)


def _check_post(post: Statement, known_steps: set[str], problems: list[str]) -> None:
    _check_sections(post, POST_CONDITIONS, "post", problems)
    for condition in post.block or []:
        if condition.name in POST_CONDITIONS:
            _check_steps(condition, known_steps, problems)


def _check_when(when: Statement, problems: list[str]) -> None:
    _check_sections(when, WHEN_CONDITIONS, "when", problems)
    for condition in when.block or []:
        if condition.name in WHEN_NESTING:
            if not condition.block:
                problems.append(f"line {condition.line}: `{condition.name}` needs a block of conditions")
            else:
                _check_when(condition, problems)


def _check_agent(agent: Statement, problems: list[str]) -> None:
    if agent.block is None:
        if agent.header not in {"any", "none"}:
            problems.append(f"line {agent.line}: `agent {agent.header}` is neither any, none nor a block")
        return
    _check_sections(agent, AGENT_KINDS, "agent", problems)


def problems_in(source: str) -> list[str]:
    """Parse a Groovy file's text and check its declarative pipeline."""
    pipeline = find_pipeline(parse_groovy(source))
    return check_pipeline(pipeline, KNOWN_STEPS | library_steps())


# ---------------------------------------------------------------------------------------------- the tests

LIBRARY_PIPELINE = LIBRARY_VARS / "eventServicePipeline.groovy"


def test_library_pipeline_follows_the_declarative_rules():
    assert problems_in(LIBRARY_PIPELINE.read_text(encoding="utf-8")) == []


def test_library_pipeline_has_the_issue_stages_in_order():
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    stage_names = [stage.header for stage in pipeline.child("stages").children("stage")]
    assert stage_names == [
        "('Checks')",
        "('Build')",
        "('Promote staging')",
        "('Review staging')",
        "('Staging')",
        "('Promote production')",
        "('Approve production')",
        "('Production')",
        "('Drift')",
    ]


def test_checks_run_lint_type_and_tests_in_parallel():
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    checks = pipeline.child("stages").children("stage")[0]
    branches = [stage.header for stage in checks.child("parallel").children("stage")]
    assert branches == ["('Lint')", "('Type check')", "('Tests')", "('Template')"]


def test_each_deploy_waits_for_its_promotion_to_be_merged_without_holding_an_executor():
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    for name in ("('Review staging')", "('Approve production')"):
        review = next(s for s in pipeline.child("stages").children("stage") if s.header == name)
        assert "promote/" in review.child("input").child("message").header, "the message names the branch"
        assert review.child("agent") is None, "waiting for a person must not hold an executor"


def test_deploys_take_the_stashed_wheel_after_checking_out_what_main_says():
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    stages = {s.header: s for s in pipeline.child("stages").children("stage")}
    build_steps = repr(stages["('Build')"].child("stages").children("stage")[0].child("steps").block)
    assert "name='stash'" in build_steps and "dist/*.whl" in build_steps
    for name, environment in (("('Staging')", "staging"), ("('Production')", "production")):
        deploy = stages[name].child("stages").children("stage")[0].child("steps").block
        names = [step.name for step in deploy]
        assert names[:3] == ["gitopsCheckoutPromotion", "unstash", "script"], names
        assert f"'{environment}'" in deploy[0].header


def test_failed_staging_and_production_roll_back():
    pipeline = find_pipeline(parse_groovy(LIBRARY_PIPELINE.read_text(encoding="utf-8")))
    for name in ("('Staging')", "('Production')"):
        stage = next(s for s in pipeline.child("stages").children("stage") if s.header == name)
        failure = stage.child("post").child("failure")
        rendered = repr(failure.block)
        assert "rollback" in rendered and "error" in rendered, f"{name}: rollback then fail loudly"
        guard = failure.child("script").child("if")
        assert "env.DEPLOY_STARTED" in guard.header and "rollback" in repr(guard.block), "only after the deploy began"


BAD_PIPELINES = {
    "sh straight in a stage": """
        pipeline { agent any
          stages { stage('Lint') { sh 'make lint' } } }""",
    "two kinds of work in a stage": """
        pipeline { agent any
          stages { stage('Lint') { steps { sh 'make lint' }
                                   parallel { stage('A') { steps { echo 'a' } } } } } }""",
    "unknown step": """
        pipeline { agent any
          stages { stage('Lint') { steps { shh 'make lint' } } } }""",
    "unknown post condition": """
        pipeline { agent any
          stages { stage('Lint') { steps { sh 'make lint' } } }
          post { onFailure { echo 'x' } } }""",
    "pipeline without agent": """
        pipeline { stages { stage('Lint') { steps { sh 'make lint' } } } }""",
    "steps outside a stage": """
        pipeline { agent any
          stages { steps { sh 'make lint' } } }""",
    "unknown when condition": """
        pipeline { agent any
          stages { stage('Lint') { when { onBranch 'main' } steps { sh 'make lint' } } } }""",
    "input without message": """
        pipeline { agent any
          stages { stage('Go') { input { ok 'Yes' } steps { echo 'go' } } } }""",
    "agent beside parallel": """
        pipeline { agent none
          stages { stage('Checks') { agent any
                     parallel { stage('A') { agent any
                                             steps { echo 'a' } } } } } }""",
    "empty steps": """
        pipeline { agent any
          stages { stage('Lint') { steps { } } } }""",
}


@pytest.mark.parametrize("source", BAD_PIPELINES.values(), ids=BAD_PIPELINES.keys())
def test_checker_rejects_a_broken_pipeline(source):
    assert problems_in(source) != []


def test_checker_accepts_a_minimal_pipeline():
    source = """
        pipeline {
            agent any
            stages {
                stage('Lint') {
                    when { not { branch 'main' } }
                    steps {
                        withCredentials([string(credentialsId: 'x', variable: 'X')]) { sh 'make lint' }
                    }
                    post { always { junit 'reports/*.xml' } }
                }
            }
        }"""
    assert problems_in(source) == []


def test_parser_reports_unbalanced_braces():
    with pytest.raises(SyntaxError):
        parse_groovy("pipeline { agent any\n stages { stage('x') { steps { echo 'x' } }\n")
