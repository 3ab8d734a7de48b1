"""Static checks of the CI/CD workflows (.github/workflows) and the scripts they call.

No GitHub runner here: each workflow is validated against the GitHub workflow schema that
check-jsonschema vendors, every `make <target>` it runs must exist in this Makefile, no
literal secret may appear, and each has least-privilege permissions, a concurrency group and
timeouts. The .ci/ scripts the targets call are run here on fakes (a fake `bankmarketing`
monitor, a fake `docker`, a throwaway MLflow registry).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bankmarketing.registry import client_for

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI = ROOT / ".ci"
EXPECTED = {"ci.yml", "images.yml", "drift-check.yml", "retrain.yml", "release.yml"}
FILES = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
IDS = [path.name for path in FILES]
MAKE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}


def load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if True in data:  # PyYAML reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def run_steps(workflow: dict):
    """(job id, job, step) for every step with a `run` script."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                yield job_id, job, step


def expand_matrix(text: str, job: dict) -> list[str]:
    """`${{ matrix.x }}` replaced by each value of the job's matrix (one text per value)."""
    matrix = job.get("strategy", {}).get("matrix", {})
    texts = [text]
    for name, values in matrix.items():
        if isinstance(values, list):
            token = re.compile(r"\$\{\{\s*matrix\." + re.escape(name) + r"\s*\}\}")
            texts = [token.sub(str(v), t) for t in texts for v in values] if token.search(text) else texts
    return texts


MAKE_CALL = re.compile(r"(?:^|[;&|(]\s*|\s)make\s+((?:[^\s;&|)]+\s*)+)", re.MULTILINE)


def make_targets(script: str) -> list[str]:
    """Targets of every `make ...` command line in a shell script (variables and flags left out)."""
    targets = []
    for line in script.splitlines():
        line = line.split("#", 1)[0]
        for match in MAKE_CALL.finditer(line):
            for word in match.group(1).split():
                if "=" in word or word.startswith("-"):
                    continue  # a variable or a flag
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break  # the command's arguments end here
                targets.append(word)
    return targets


def workflow_targets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in FILES:
        for _, job, step in run_steps(load(path)):
            for script in expand_matrix(step["run"], job):
                found.setdefault(path.name, set()).update(make_targets(script))
    return found


def help_targets() -> set[str]:
    """Targets with a `## help` line in the Makefile or .ci/targets.mk (what `make help` lists)."""
    names = set()
    for path in (ROOT / "Makefile", CI / "targets.mk"):
        for line in path.read_text().splitlines():
            match = re.match(r"^([a-z-]+):.*## ", line)
            if match:
                names.add(match.group(1))
    return names


# --- the workflow files --------------------------------------------------------------


def test_the_five_workflows_exist():
    assert EXPECTED <= {path.name for path in FILES}


def test_every_workflow_validates_against_the_github_workflow_schema():
    checker = Path(sys.executable).with_name("check-jsonschema")
    command = [str(checker)] if checker.exists() else [sys.executable, "-m", "check_jsonschema"]
    result = subprocess.run(
        [*command, "--builtin-schema", "vendor.github-workflows", *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_really_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_permissions_are_least_privilege(path):
    workflow = load(path)
    top = workflow.get("permissions")
    assert isinstance(top, dict), f"{path.name}: top-level permissions must be an explicit mapping"
    assert top.get("contents") == "read", f"{path.name}: contents must be read at the top level"
    allowed_writes = {"drift-check.yml": {"issues"}, "release.yml": set()}.get(path.name, set())
    writes = {scope for scope, level in top.items() if level == "write"}
    assert writes <= allowed_writes, f"{path.name}: writes {writes} at the top level"
    for job_id, job in workflow["jobs"].items():
        permissions = job.get("permissions", {})
        assert permissions != "write-all" and top != "write-all"
        job_writes = {scope for scope, level in permissions.items() if level == "write"}
        if path.name == "release.yml":
            assert job_writes <= {"contents"}, job_id
        else:
            assert not job_writes, f"{path.name}:{job_id} writes {job_writes}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_job_has_a_timeout_and_the_workflow_a_concurrency_group(path):
    workflow = load(path)
    assert workflow.get("concurrency", {}).get("group"), path.name
    for job_id, job in workflow["jobs"].items():
        assert 0 < int(job["timeout-minutes"]) <= 180, f"{path.name}:{job_id}"


PINNED = re.compile(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})")


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_actions_are_pinned(path):
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]), step[
                    "uses"
                ]


SECRET_PATTERNS = [
    re.compile(p)
    for p in (
        r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
        r"AKIA[0-9A-Z]{16}",  # AWS access key ids
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"://[^/\s:@${}]+:[^/\s@${}]+@",  # credentials inside a URL
        r"(?i)(password|passwd|secret|token)\s*[:=]\s*['\"]?(?!\$\{\{)[A-Za-z0-9+/_-]{8,}",
    )
]
SECRET_NAMES = re.compile(r"(?i)(token|secret|password|passwd|api_key|credential|database_url|tracking_uri)")


def _env_blocks(workflow: dict):
    yield workflow.get("env", {})
    for job in workflow["jobs"].values():
        yield job.get("env", {})
        for step in job.get("steps", []):
            yield step.get("env", {})
            yield step.get("with", {})


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_no_literal_secret(path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not pattern.search(text), f"{path.name}: {pattern.pattern} matches"
    for block in _env_blocks(load(path)):
        for name, value in block.items():
            if SECRET_NAMES.search(name) and isinstance(value, str):
                assert re.fullmatch(r"\$\{\{\s*(secrets\.[A-Z0-9_]+|github\.token)\s*\}\}", str(value)), (
                    f"{path.name}: {name} must come from secrets.* (or github.token), not {value!r}"
                )
    # secrets are only read into env/with, never expanded inside a shell script
    for _, _, step in run_steps(load(path)):
        assert "secrets." not in step["run"], f"{path.name}: a script expands a secret inline"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_inputs_never_reach_a_script_unquoted(path):
    """Inputs, event fields and step outputs go through env, never into `run:` text (injection)."""
    for _, _, step in run_steps(load(path)):
        assert not re.search(r"\$\{\{\s*(inputs|github\.event|steps)\.", step["run"]), step.get("name")


def test_workflows_run_through_makefile_targets():
    targets = workflow_targets()
    ci = load(WORKFLOWS / "ci.yml")
    assert any(step["run"].strip().endswith("bash .ci/run") for _, _, step in run_steps(ci))
    assert {"push", "pull_request"} <= set(ci["on"])
    assert {
        "image-app",
        "image-mage",
        "image-predictor",
        "smoke-app",
        "smoke-mage",
        "smoke-predictor",
    } <= targets["images.yml"]
    assert "deploy" in targets["images.yml"]  # deploy writes the predictor context
    drift = load(WORKFLOWS / "drift-check.yml")
    assert {"schedule", "workflow_dispatch"} <= set(drift["on"]) and "drift-check" in targets[
        "drift-check.yml"
    ]
    assert drift["permissions"].get("issues") == "write"
    assert "retrain" in targets["retrain.yml"] and set(load(WORKFLOWS / "retrain.yml")["on"]) == {
        "workflow_dispatch"
    }
    release = load(WORKFLOWS / "release.yml")
    assert release["on"]["push"]["tags"] == ["v*"]
    assert {"model-card", "images", "dist"} <= targets["release.yml"]


def test_make_target_extraction():
    assert make_targets('make retrain VARS="$VARS"') == ["retrain"]
    assert make_targets("make smoke-app SMOKE_TIMEOUT=420") == ["smoke-app"]
    assert make_targets("make fetch-data | tee x.log") == ["fetch-data"]
    assert make_targets("a && make prepare\n  make train VARS='{\"trials\": 2}'") == ["prepare", "train"]
    assert make_targets("echo no-make-here; # make nothing") == []


def test_every_make_target_a_workflow_runs_exists():
    listed = help_targets()
    for workflow, targets in workflow_targets().items():
        for target in sorted(targets):
            dry = subprocess.run(
                ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, env=MAKE_ENV
            )
            assert dry.returncode == 0 or target in listed, f"{workflow}: make {target}: {dry.stderr}"
            assert target in listed, f"{workflow}: make {target} has no `## help` line"
    assert subprocess.run(["make", "-n", "no-such-target"], cwd=ROOT, capture_output=True).returncode != 0


def test_ci_targets_follow_the_makefile_style():
    text = (CI / "targets.mk").read_text()
    rules = re.findall(r"^([a-z][a-z-]*):(.*)$", text, re.MULTILINE)
    assert rules
    for name, rest in rules:
        assert "## " in rest, f"{name} has no help text"
    assert "api-docs" in dict(rules)
    assert "$(APP)/" in text and "$(MAGE)/" in text


# --- the scripts the targets call ----------------------------------------------------

FIRING = {
    "model_name": "bank-term-deposit",
    "source": "log",
    "periods": [],
    "firing": {
        "model_version": 3,
        "period": "2026-11-20",
        "period_start": "2026-11-20T00:00:00+00:00",
        "period_end": "2026-11-21T00:00:00+00:00",
        "rows": 812,
        "prediction_drift_score": 0.23,
        "prediction_drift_threshold": 0.1,
        "prediction_psi": 0.4,
        "drifted_columns": 6,
        "columns": 15,
        "missing_values_share": 0.0,
    },
    "alert": {"fired": True, "period": "2026-11-20", "value": 0.23, "posted": False, "reason": "alert=false"},
}
QUIET = FIRING | {
    "firing": None,
    "alert": {"fired": False, "posted": False, "reason": "the newest tested period is below the threshold"},
}


def _fake_monitor(tmp_path: Path, result: dict, status: int = 0) -> Path:
    fake = tmp_path / "bankmarketing"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        'echo "$@" > "$(dirname "$0")/args"\n'
        "echo 'a library printing to stdout {not json}'\n"
        f"cat <<'JSON'\n{json.dumps(result, indent=2)}\nJSON\n"
        f"exit {status}\n"
    )
    fake.chmod(0o755)
    return fake


def _drift_check(tmp_path, fake, *extra):
    env = dict(os.environ, GITHUB_OUTPUT=str(tmp_path / "github_output"), GITHUB_RUN_ID="42")
    env["GITHUB_REPOSITORY"] = "acme/bank"
    return subprocess.run(
        [sys.executable, str(CI / "drift_check.py"), "--bankmarketing", str(fake), "--output"]
        + [str(tmp_path / "out" / "drift-check.json"), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_drift_check_reports_a_firing_alert_for_an_issue(tmp_path):
    fake = _fake_monitor(tmp_path, FIRING)
    vars_ = json.dumps(
        {"source": "log", "periods": ["jun", "jul"], "alert": False, "prediction_threshold": 0.1}
    )
    run = _drift_check(tmp_path, fake, "--vars", vars_)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "args").read_text().split() == [
        "monitor",
        "--source",
        "log",
        "--periods",
        "jun,jul",
        "--alert",
        "false",
        "--prediction-threshold",
        "0.1",
    ]
    assert json.loads((tmp_path / "out" / "drift-check.json").read_text()) == FIRING
    outputs = dict(line.split("=", 1) for line in (tmp_path / "github_output").read_text().splitlines())
    assert outputs["fired"] == "true" and outputs["period"] == "2026-11-20" and outputs["value"] == "0.23"
    assert outputs["title"] == "Prediction drift: bank-term-deposit v3, period 2026-11-20"
    body = (tmp_path / "out" / "drift-check.md").read_text()
    assert "0.2300" in body and "docs/runbook.md" in body and "acme/bank/actions/runs/42" in body


def test_drift_check_without_drift_opens_nothing(tmp_path):
    run = _drift_check(tmp_path, _fake_monitor(tmp_path, QUIET))
    assert run.returncode == 0, run.stderr
    outputs = dict(line.split("=", 1) for line in (tmp_path / "github_output").read_text().splitlines())
    assert outputs["fired"] == "false" and outputs["title"] == ""
    assert not (tmp_path / "out" / "drift-check.md").exists()


def test_drift_check_fails_when_monitor_fails(tmp_path):
    run = _drift_check(tmp_path, _fake_monitor(tmp_path, QUIET, status=2))
    assert run.returncode == 2
    assert not (tmp_path / "github_output").exists()


def _retrain_vars(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_")}
    return subprocess.run(
        [sys.executable, str(CI / "retrain_vars.py")],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=30,
    )


def test_retrain_vars_from_workflow_inputs():
    run = _retrain_vars(
        RETRAIN_ADD_MONTHS="jun, jul",
        RETRAIN_CANDIDATES="xgboost",
        RETRAIN_TRIALS="5",
        RETRAIN_MARGIN="0.01",
        RETRAIN_METRIC="roc_auc",
        RETRAIN_TRIGGERED_BY="github:dependabot[bot]:retrain-workflow",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "add_months": ["jun", "jul"],
        "train": {"candidates": ["xgboost"], "trials": 5},
        "deploy": {"margin": 0.01, "metric": "roc_auc"},
        "triggered_by": "github:dependabot[bot]:retrain-workflow",
    }
    assert "'" not in run.stdout  # the Makefile wraps VARS in single quotes
    assert json.loads(_retrain_vars().stdout) == {}


@pytest.mark.parametrize(
    "env",
    [
        {"RETRAIN_ADD_MONTHS": "dec"},
        {"RETRAIN_CANDIDATES": "xgboost'; rm -rf /"},
        {"RETRAIN_TRIALS": "0"},
        {"RETRAIN_MARGIN": "-1"},
        {"RETRAIN_METRIC": "accuracy"},
        {"RETRAIN_TRIGGERED_BY": "x'$(id)"},
    ],
)
def test_retrain_vars_refuse_bad_inputs(env):
    run = _retrain_vars(**env)
    assert run.returncode != 0 and run.stdout == ""


FAKE_DOCKER = """#!/usr/bin/env bash
# a fake docker: the container turns healthy after $FAKE_HEALTHY_AFTER inspections
state="$FAKE_STATE_DIR"
case "$1 $2" in
  "image inspect") [ "${FAKE_NO_HEALTHCHECK:-}" = 1 ] && echo "" || echo yes; exit 0 ;;
  "run -d") echo "$@" > "$state/run"; echo 0 > "$state/n"; echo cid; exit 0 ;;
  "rm -f") echo removed > "$state/rm"; exit 0 ;;
  "logs --tail") echo "container log"; exit 0 ;;
esac
if [ "$1" = inspect ]; then
  case "$3" in
    *Health.Status*)
      n=$(( $(cat "$state/n") + 1 )); echo $n > "$state/n"
      if [ $n -ge "$FAKE_HEALTHY_AFTER" ]; then echo "${FAKE_FINAL:-healthy}"; else echo starting; fi ;;
    *Running*) echo true ;;
    *) echo '{"Status": "x"}' ;;
  esac
  exit 0
fi
exit 1
"""


def _smoke(tmp_path, **env):
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    full = dict(os.environ, DOCKER=str(docker), FAKE_STATE_DIR=str(tmp_path), FAKE_HEALTHY_AFTER="2") | env
    return subprocess.run(
        ["bash", str(CI / "smoke_image.sh"), "img:tag", "30", "-p", "127.0.0.1:1:2"],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def test_smoke_script_waits_for_healthy_and_cleans_up(tmp_path):
    run = _smoke(tmp_path, SMOKE_PROBE="echo probed")
    assert run.returncode == 0, run.stderr
    assert "healthy after" in run.stdout and "probed" in run.stdout
    assert "-p 127.0.0.1:1:2 img:tag" in (tmp_path / "run").read_text()
    assert (tmp_path / "rm").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FAKE_FINAL": "unhealthy"}, "unhealthy"),
        ({"FAKE_NO_HEALTHCHECK": "1"}, "no HEALTHCHECK"),
        ({"SMOKE_PROBE": "false"}, "probe failed"),
    ],
)
def test_smoke_script_fails_loudly(tmp_path, env, message):
    run = _smoke(tmp_path, **env)
    assert run.returncode != 0 and message in run.stderr


def test_model_card_export_reads_the_production_versions_card(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")

    sys.path.insert(0, str(CI))
    try:
        import export_model_card
    finally:
        sys.path.remove(str(CI))
    from bankmarketing.config import Settings

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = client_for(uri)
    experiment = client.create_experiment("cards", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_text(run.info.run_id, "# Model card — m version 1\n", "model_card.md")
    client.create_registered_model("m")
    version = client.create_model_version("m", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_model_version_tag("m", version.version, "test_pr_auc", "0.47")
    client.set_registered_model_alias("m", "production", version.version)
    settings = Settings(
        data_path=None,
        data_dir=tmp_path,
        data_url="",
        tracking_uri=uri,
        model_name="m",
        experiment="cards",
        database_url=None,
        mlflow_dir=tmp_path,
    )
    facts = export_model_card.export(settings, "production", tmp_path / "release")
    assert (tmp_path / "release" / "model_card.md").read_text() == "# Model card — m version 1\n"
    written = json.loads((tmp_path / "release" / "model_version.json").read_text())
    assert written["version"] == "1" and written["tags"] == {"test_pr_auc": "0.47"}
    assert facts["card_source"].endswith("/model_card.md")
    with pytest.raises(SystemExit, match="alias 'previous'"):
        export_model_card.export(settings, "previous", tmp_path / "other")
