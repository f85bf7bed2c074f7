"""docs/pipelines.md names everything a user has to create for the pipelines to run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "pipelines.md").read_text(encoding="utf-8")
WORKFLOWS = ROOT / "pipelines" / "github" / "workflows"


def test_every_secret_and_variable_the_workflows_read_is_documented():
    names = set()
    for path in WORKFLOWS.glob("*.yml"):
        names |= set(re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]+)", path.read_text(encoding="utf-8")))
    assert names, "the workflows read no secrets: the pattern is wrong"
    assert {name for name in names if f"`{name}`" not in DOC} == set()


def test_every_jenkins_credential_id_and_setting_is_documented():
    settings = (ROOT / "pipelines" / "jenkins" / "vars" / "pipelineSettings.groovy").read_text(encoding="utf-8")
    credential_ids = re.findall(r"^\s*\w+CredentialsId:\s*'([\w-]+)'", settings, re.M)
    assert len(credential_ids) == 5
    assert {cid for cid in credential_ids if f"`{cid}`" not in DOC} == set()
    setting_names = re.findall(r"^\s*(\w+):", settings, re.M)
    undocumented = {name for name in setting_names if name not in DOC and not name.endswith("Reports")}
    assert undocumented == set()


def test_every_make_target_the_pipelines_call_is_in_the_doc():
    targets = set()
    for path in WORKFLOWS.glob("*.yml"):
        for job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].values():
            for step in job.get("steps", []):
                targets |= set(re.findall(r"\bmake\s+(?:(?:-o\s+[\w-]+|--[\w-]+)\s+)*([\w-]+)", step.get("run", "")))
    assert {target for target in targets if not re.search(rf"`(?:make )?{re.escape(target)}\b", DOC)} == set()
