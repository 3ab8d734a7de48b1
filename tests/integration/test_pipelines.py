"""`mage run` of prepare then train, on real data, against real MLflow (SQLite and Postgres)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from bankmarketing.registry import COMPLETE_TAG
from bankmarketing.training.candidates import CANDIDATES
from tests.conftest import MlflowServer
from tests.integration.conftest import CI_TRAIN_VARS, MageProject

pytestmark = pytest.mark.integration

METRIC_TAGS = [
    "val_roc_auc",
    "val_pr_auc",
    "val_f1",
    "val_precision",
    "val_recall",
    "val_brier",
    "val_ece",
    "val_lift_top_decile",
    "val_accuracy",
    "val_accuracy_majority_baseline",
]
PLOTS = {
    "roc.png",
    "precision_recall.png",
    "calibration.png",
    "cumulative_gains.png",
    "confusion_matrix.png",
    "feature_importance.png",
}


def _prepare_and_train(project: MageProject) -> None:
    prepared = project.run("prepare")
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    trained = project.run("train", CI_TRAIN_VARS)
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]


def _assert_registered_candidates(project: MageProject) -> None:
    versions = project.versions()
    assert len(versions) >= 5
    assert {v.tags["candidate"] for v in versions} == set(CANDIDATES)
    data_versions = {v.tags["data_version"] for v in versions}
    assert len(data_versions) == 1 and len(data_versions.pop()) == 64
    for version in versions:
        assert version.tags[COMPLETE_TAG] == "true"
        assert version.tags["git_commit"]
        for tag in METRIC_TAGS:
            assert 0.0 <= float(version.tags[tag]) <= 1.0 or tag == "val_lift_top_decile", tag
        assert float(version.tags["val_lift_top_decile"]) > 1.5
        run = project.client.get_run(version.run_id)
        assert run.data.params["candidate"] == version.tags["candidate"]
        assert run.data.tags["data_version"] == version.tags["data_version"]
        plots = {a.path.rsplit("/", 1)[-1] for a in project.client.list_artifacts(version.run_id, "plots")}
        assert plots == PLOTS
    best = max(versions, key=lambda v: float(v.tags["val_pr_auc"]))
    assert float(best.tags["val_pr_auc"]) > 2 * float(best.tags["val_pr_auc_baseline"])


def test_prepare_train_deploy_test_through_mage(mage_project, tmp_path):
    _prepare_and_train(mage_project)
    _assert_registered_candidates(mage_project)

    predictor = tmp_path / "predictor"
    deployed = mage_project.run("deploy", json.dumps({"predictor_dir": str(predictor)}))
    assert deployed.returncode == 0, mage_project.output(deployed)[-3000:]
    production = mage_project.client.get_model_version_by_alias(mage_project.model_name, "production")
    assert production.tags["deploy_decision"] == "promote"
    assert (predictor / "Dockerfile").is_file() and list((predictor / "wheels").glob("*.whl"))
    assert "docker build -t" in mage_project.output(deployed)  # no engine here: it says how

    tested = mage_project.run("test")
    assert tested.returncode == 0, mage_project.output(tested)[-3000:]
    assert f"v{production.version} on test" in mage_project.output(tested)
    again = mage_project.run("deploy", json.dumps({"predictor_dir": str(predictor)}))
    assert again.returncode == 0
    assert "keep: version" in mage_project.output(again)  # same run, same best: nothing to promote


def test_prepare_then_train_with_mlflow_on_postgres(tmp_path, data_csv, postgres_url):
    url = postgres_url("mlflow", migrate=False)  # MLflow's store: MLflow makes its own tables
    server = MlflowServer(tmp_path / "mlflow-pg", database_url=url)
    try:
        project = MageProject(tmp_path, data_csv, server.uri)
        _prepare_and_train(project)
        _assert_registered_candidates(project)
        # the versions are rows of MLflow's tables in that Postgres database, not of a file
        query = sa.text("SELECT count(*) FROM model_versions WHERE name = :name")
        with sa.create_engine(url).connect() as connection:
            stored = connection.execute(query, {"name": project.model_name}).scalar()
        assert stored == len(project.versions())
        assert not list((tmp_path / "mlflow-pg").glob("*.db"))
    finally:
        server.stop()


def test_bad_runtime_variables_are_rejected_by_the_first_block(mage_project):
    result = mage_project.run("train", '{"trails": 3, "cv_folds": "many"}')
    assert result.returncode != 0
    output = mage_project.output(result)
    assert "trails: Extra inputs are not permitted" in output
    assert "cv_folds: Input should be a valid integer" in output
    assert mage_project.versions() == []
