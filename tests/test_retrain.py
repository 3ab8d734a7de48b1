"""`retrain`: the newest window, and a Mage run that trains on it and passes the gate."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
import sqlalchemy as sa

from bankmarketing.alerts import AlertReceiverConfig, grafana_payload
from bankmarketing.alerts.app import create_app
from bankmarketing.data.prepare import PrepareOptions, current_manifest, prepare
from bankmarketing.data.split import REFERENCE_MONTHS
from bankmarketing.database import engine_for, retraining
from bankmarketing.deployment import DeployOptions, audit_trail, deploy
from bankmarketing.options import OptionsError, parse_options
from bankmarketing.registry import client_for
from bankmarketing.retrain import RetrainOptions, prepare_options, window_months
from bankmarketing.training.train import TrainOptions, train
from tests.conftest import FakeMage, mage_run, settings_for

RECEIVER_TOKEN = "receiver-token-for-retrain-0123456789"
NOW = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)

SMALL_TRAIN = {
    "candidates": "logistic_regression,xgboost",
    "trials": 1,
    "cv_folds": 2,
    "importance_rows": 300,
}


def test_the_window_runs_through_the_alerting_period(settings):
    options = parse_options(RetrainOptions, {"period": "aug"})
    assert window_months(settings, options) == [*REFERENCE_MONTHS, "jun", "jul", "aug"]


def test_explicit_months_win_and_keep_calendar_order(settings):
    options = parse_options(RetrainOptions, {"add_months": "sep,jun", "period": "aug"})
    assert window_months(settings, options) == [*REFERENCE_MONTHS, "jun", "sep"]


def test_without_alert_or_labels_the_window_is_the_reference(settings):
    assert window_months(settings, RetrainOptions()) == list(REFERENCE_MONTHS)


def test_the_newest_month_is_held_out_for_the_gate(settings):
    held = prepare_options(settings, parse_options(RetrainOptions, {"period": "aug", "use_feedback": False}))
    assert (held.train_months, held.holdout_months) == ([*REFERENCE_MONTHS, "jun", "jul"], ["aug"])
    options = parse_options(
        RetrainOptions, {"period": "aug", "use_feedback": False, "hold_out_newest": False}
    )
    assert (
        prepare_options(settings, options).train_months,
        prepare_options(settings, options).holdout_months,
    ) == (
        [*REFERENCE_MONTHS, "jun", "jul", "aug"],
        [],
    )
    assert prepare_options(settings, RetrainOptions(use_feedback=False)).holdout_months == []  # nothing later


def test_bad_variables_are_named():
    with pytest.raises(OptionsError) as error:
        parse_options(RetrainOptions, {"add_months": "june", "train": {"trails": 2}})
    assert "june" in str(error.value) and "train.trails: Extra inputs are not permitted" in str(error.value)


@pytest.fixture
def in_production(tmp_path, data_csv, mlflow_server):
    """A logistic regression in production, trained on the reference window only."""
    settings = settings_for(tmp_path, data_csv, mlflow_server.uri)
    prepare(settings, PrepareOptions())
    train(
        settings, TrainOptions(candidates=["logistic_regression"], trials=1, cv_folds=2, importance_rows=300)
    )
    deploy(settings, DeployOptions())
    return replace(settings, database_url=None)


@pytest.mark.integration
def test_retrain_through_mage_trains_on_the_new_window_and_goes_through_the_gate(in_production):
    settings = in_production
    client = client_for(settings.tracking_uri)
    before = client.get_model_version_by_alias(settings.model_name, "production")
    variables = {
        "period": "jul",
        "fingerprint": "abc123",
        "alertname": "Prediction drift",
        "train": SMALL_TRAIN,
    }
    result = mage_run(settings, "retrain", variables)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 0, output[-4000:]

    manifest = current_manifest(settings)
    assert manifest["options"]["train_months"] == [*REFERENCE_MONTHS, "jun"]
    assert manifest["options"]["holdout_months"] == ["jul"]  # the alert's month judges, unseen
    new_versions = [
        v
        for v in client.search_model_versions(f"name='{settings.model_name}'")
        if v.tags.get("prepared_id") == manifest["prepared_id"]
    ]
    assert {v.tags["candidate"] for v in new_versions} == {"logistic_regression", "xgboost"}
    decision = audit_trail(settings, settings.model_name).iloc[-1]
    assert decision["action"] in {"promote", "refuse"}
    assert "mage:retrain" in decision["triggered_by"] and "abc123" in decision["triggered_by"]
    assert "held-out jul" in decision["evaluation_set"] and decision["evaluation_rows"] >= 1000
    after = client.get_model_version_by_alias(settings.model_name, "production")
    if decision["action"] == "promote":
        assert after.version != before.version and after.tags["prepared_id"] == manifest["prepared_id"]
        assert client.get_model_version_by_alias(settings.model_name, "previous").version == before.version
    else:
        assert after.version == before.version
    assert decision["action"] + ":" in output


@pytest.mark.integration
def test_a_failed_retrain_leaves_production_and_the_prepared_data_alone(in_production):
    settings = in_production
    client = client_for(settings.tracking_uri)
    before = client.get_model_version_by_alias(settings.model_name, "production").version
    prepared = current_manifest(settings)["prepared_id"]
    result = mage_run(settings, "retrain", {"add_months": ["june"], "train": SMALL_TRAIN})
    assert result.returncode != 0
    assert "june" in " ".join((result.stdout + result.stderr).split())
    assert client.get_model_version_by_alias(settings.model_name, "production").version == before
    assert current_manifest(settings)["prepared_id"] == prepared


def _alert_variables(settings, mage) -> dict:
    """Post a firing alert to the real receiver app; return the variables it sent to Mage."""
    config = AlertReceiverConfig(
        token=RECEIVER_TOKEN, mage_api_url=mage.url, mage_token=mage.token, mage_schedule_id=1
    )
    client = create_app(settings, config).test_client()
    payload = grafana_payload(
        "Prediction drift", {"model_name": settings.model_name, "period": "jun"}, 0.3, NOW
    )
    reply = client.post("/alerts", json=payload, headers={"Authorization": f"Bearer {RECEIVER_TOKEN}"})
    assert reply.get_json()["results"][0]["decision"] == "started"
    return mage.variables()


def _retraining_status(settings, retraining_id: int) -> tuple[str, str]:
    with engine_for(settings.platform_database_url).connect() as connection:
        query = sa.select(retraining.c.status, retraining.c.detail).where(retraining.c.id == retraining_id)
        return tuple(connection.execute(query).one())


@pytest.mark.integration
def test_the_receivers_variables_start_a_retrain_that_reports_its_end(in_production):
    mage = FakeMage()
    try:
        variables = _alert_variables(in_production, mage)
    finally:
        mage.stop()
    result = mage_run(in_production, "retrain", variables | {"train": SMALL_TRAIN})
    assert result.returncode == 0, " ".join((result.stdout + result.stderr).split())[-3000:]
    status, detail = _retraining_status(in_production, variables["retraining_id"])
    assert status == "succeeded" and detail.split(":")[0] in {"promote", "refuse"}
    options = current_manifest(in_production)["options"]  # the alert fired on jun: held out for the gate
    assert (options["train_months"], options["holdout_months"]) == (list(REFERENCE_MONTHS), ["jun"])
