"""Item 4: `train` and `retrain` killed mid-run (SIGKILL to Mage's process group).

The killed run has registered at least one complete version (COMPLETE_TAG) but never
finished: its parent MLflow run stays RUNNING. `deploy` must leave it alone: production
stays where it was, no version of the killed run gets a staging alias, and the rerun's
versions are the ones staged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from mlflow import MlflowClient

from bankmarketing.data.prepare import PrepareOptions, prepare
from bankmarketing.deployment import PRODUCTION, STAGING_PREFIX, DeployOptions, deploy, stage_candidates
from bankmarketing.registry import COMPLETE_TAG, client_for
from bankmarketing.training.train import TRAINING_COMPLETE_TAG, TrainOptions, train
from tests.conftest import MAGE, REPO, mage_env, mage_run, settings_for

pytestmark = pytest.mark.integration

#: Reduced training; svc after logistic regression keeps the killed run busy long enough.
FAST = {"trials": 1, "timeout_s": 10, "cv_folds": 2, "importance_rows": 300}
SLOW_SECOND = ["logistic_regression", "svc"]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, data_csv, mlflow_server):
    """Prepared data, one finished training run and a production version."""
    root = tmp_path_factory.mktemp("interrupted")
    settings = settings_for(root, data_csv, mlflow_server.uri, f"interrupted-{uuid.uuid4().hex[:6]}")
    prepare(settings, PrepareOptions())
    exported = os.environ.get("MLFLOW_EXPERIMENT_ID")
    first = train(settings, TrainOptions(candidates=["logistic_regression"], **FAST))
    deploy(settings, DeployOptions(triggered_by="test:first"))
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID for subprocesses: a later `mage run`
    # against another tracking server would inherit an id that server does not have.
    if exported is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
    else:
        os.environ["MLFLOW_EXPERIMENT_ID"] = exported
    return settings, first["training_run_id"]


def _complete_versions(client: MlflowClient, name: str) -> list:
    return [v for v in client.search_model_versions(f"name='{name}'") if v.tags.get(COMPLETE_TAG) == "true"]


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases)


def kill_after_first_version(settings, pipeline: str, variables: dict, known_runs: set[str]) -> str:
    """Start `mage run`, wait until a new training run registered a complete version, SIGKILL it.

    Returns the killed training run's id.
    """
    client = client_for(settings.tracking_uri)
    command = [str(MAGE), "run", "mlops", pipeline, "--runtime-vars", json.dumps(variables)]
    log = open(settings.data_dir.parent / f"{pipeline}-killed.log", "wb")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=mage_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"{pipeline} ended before a version was registered"
            new = {
                v.tags["training_run_id"]
                for v in _complete_versions(client, settings.model_name)
                if v.tags.get("training_run_id") not in known_runs
            }
            if new:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
                (killed,) = new
                return killed
            time.sleep(0.2)
        raise TimeoutError(f"{pipeline} registered no version in time")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()


def check_killed_run_is_ignored(settings, killed: str, production: str) -> None:
    client = client_for(settings.tracking_uri)
    name = settings.model_name
    run = client.get_run(killed)
    assert run.info.status == "RUNNING"  # SIGKILL: nothing ended it
    assert TRAINING_COMPLETE_TAG not in run.data.tags
    killed_versions = {
        v.version for v in _complete_versions(client, name) if v.tags["training_run_id"] == killed
    }
    assert len(killed_versions) == 1  # the logistic regression made it, svc did not
    assert _aliases(client, name)[PRODUCTION] == production
    staged = stage_candidates(settings, DeployOptions())
    assert staged and not set(staged) & killed_versions
    aliases = _aliases(client, name)
    assert aliases[PRODUCTION] == production
    assert not {v for a, v in aliases.items() if a.startswith(STAGING_PREFIX)} & killed_versions


def check_rerun_is_staged(settings, known_runs: set[str], production_before: str) -> set[str]:
    client = client_for(settings.tracking_uri)
    name = settings.model_name
    versions = _complete_versions(client, name)
    rerun = {v.tags["training_run_id"] for v in versions} - known_runs
    assert len(rerun) == 1
    (rerun_id,) = rerun
    assert client.get_run(rerun_id).info.status == "FINISHED"
    assert client.get_run(rerun_id).data.tags[TRAINING_COMPLETE_TAG] == "true"
    rerun_versions = {v.version for v in versions if v.tags["training_run_id"] == rerun_id}
    aliases = _aliases(client, name)
    staging = {v for a, v in aliases.items() if a.startswith(STAGING_PREFIX)}
    assert staging and staging <= rerun_versions
    assert aliases[PRODUCTION] in {production_before, *rerun_versions}
    return rerun


def test_train_killed_mid_run_is_never_staged_and_the_rerun_is(platform):
    settings, first_run = platform
    client = client_for(settings.tracking_uri)
    production = _aliases(client, settings.model_name)[PRODUCTION]
    known = {first_run}

    killed = kill_after_first_version(settings, "train", {"candidates": SLOW_SECOND, **FAST}, known)
    check_killed_run_is_ignored(settings, killed, production)
    known.add(killed)

    rerun = mage_run(settings, "train", {"candidates": ["logistic_regression"], **FAST})
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    result = deploy(settings, DeployOptions(triggered_by="test:after-rerun"))
    check_rerun_is_staged(settings, known, production)
    assert result["action"] in {"promote", "refuse", "keep"}


def test_retrain_killed_mid_train_is_never_staged_and_the_rerun_is(platform):
    settings, first_run = platform
    client = client_for(settings.tracking_uri)
    production = _aliases(client, settings.model_name)[PRODUCTION]
    known = {v.tags["training_run_id"] for v in _complete_versions(client, settings.model_name)}
    variables = {"add_months": ["jun"], "deploy": {"build_image": False}}

    killed = kill_after_first_version(
        settings, "retrain", variables | {"train": {"candidates": SLOW_SECOND, **FAST}}, known
    )
    check_killed_run_is_ignored(settings, killed, production)
    known.add(killed)

    rerun = mage_run(
        settings, "retrain", variables | {"train": {"candidates": ["logistic_regression"], **FAST}}
    )
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    check_rerun_is_staged(settings, known, production)
