"""Outcome feedback: call outcomes loaded through the API, the CLI's file or the Mage pipeline,
joined to the prediction log, and trained on by the next `retrain`."""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd
import pytest

from bankmarketing.data.prepare import prepare
from bankmarketing.data.split import REFERENCE_MONTHS
from bankmarketing.predictions.outcomes import labelled_predictions
from bankmarketing.retrain import RetrainOptions, prepare_options
from tests.conftest import ADMIN_TOKEN, mage_run, migrated
from tests.ui.conftest import customer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def logged(served, app_factory, tmp_path):
    """Settings on a fresh platform database and data folder; 6 October customers predicted
    through the API (logged); the client and their request ids."""
    settings, _, test = served
    settings = replace(
        settings, database_url=migrated(f"sqlite:///{tmp_path}/platform.db"), data_dir=tmp_path / "data"
    )
    october = test.assign(month="oct").reset_index(drop=True)
    client = app_factory(settings={"database_url": settings.database_url}).test_client()
    ids = [
        client.post("/predict", json={"customer": customer(october, i)}).get_json()["request_id"]
        for i in range(6)
    ]
    log = client.application.extensions["bankmarketing"]["predictions"]
    deadline = time.monotonic() + 30
    while log.written < 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert log.written == 6
    return settings, client, ids, october


def test_outcomes_through_the_api_label_the_logged_predictions(logged):
    settings, client, ids, october = logged
    answers = [{"request_id": r, "subscribed": i % 2 == 0} for i, r in enumerate(ids)]
    assert client.post("/outcomes", json={"outcomes": answers}).status_code == 401
    assert labelled_predictions(settings).empty  # refused: nothing stored
    twice = client.post("/outcomes", json={"outcomes": [answers[0], answers[0]]}, headers=AUTH)
    assert twice.status_code == 422 and twice.get_json()["detail"][0]["field"] == "outcomes.1.request_id"
    wrong = client.post(
        "/outcomes", json={"outcomes": [{"request_id": ids[0], "subscribed": "maybe"}]}, headers=AUTH
    )
    assert wrong.status_code == 422 and wrong.get_json()["detail"][0]["field"] == "outcomes.0.subscribed"
    assert labelled_predictions(settings).empty
    loaded = client.post("/outcomes", json={"outcomes": answers}, headers=AUTH)
    assert loaded.status_code == 200 and loaded.get_json() == {"loaded": 6, "matched_predictions": 6}
    rows = labelled_predictions(settings)
    assert rows["y"].tolist() == ["yes", "no"] * 3 and set(rows["month"]) == {"oct"}
    assert rows.drop(columns="y").to_dict("records") == [customer(october, i) for i in range(6)]
    answers[1]["subscribed"] = True  # a corrected outcome replaces the first
    client.post("/outcomes", json={"outcomes": [answers[1]]}, headers=AUTH)
    assert labelled_predictions(settings)["y"].tolist() == ["yes", "yes", "yes", "no", "yes", "no"]


def test_the_next_retrain_judges_on_them_when_newest_and_trains_on_them_after(logged):
    settings, client, ids, _ = logged
    answers = [{"request_id": r, "subscribed": i < 3} for i, r in enumerate(ids)]
    assert client.post("/outcomes", json={"outcomes": answers}, headers=AUTH).status_code == 200
    newest = prepare_options(settings, RetrainOptions())
    assert newest.feedback and newest.train_months == list(REFERENCE_MONTHS)
    assert newest.holdout_months == ["oct"]  # their month is the newest: the gate judges on it
    held = prepare(settings, newest)
    assert (held["feedback_rows"], held["feedback_rows_held_out"]) == (0, 6)
    assert prepare_options(settings, RetrainOptions(use_feedback=False)).train_months == list(
        REFERENCE_MONTHS
    )
    after_nov = prepare_options(settings, RetrainOptions(period="nov"))  # an alert on a later month
    assert after_nov.holdout_months == ["nov"] and "oct" in after_nov.train_months
    without = prepare(settings, after_nov.model_copy(update={"feedback": False}))
    manifest = prepare(settings, after_nov)
    assert manifest["feedback_rows"] == 6 and without["feedback_rows"] == 0
    split_rows = lambda m: sum(part["rows"] for part in m["splits"].values())  # noqa: E731
    assert split_rows(manifest) == split_rows(without) + 6
    assert manifest["splits"]["train"]["rows"] == without["splits"]["train"]["rows"] + 6  # train only
    assert manifest["data_version"] != without["data_version"]  # the feedback is part of the data


def test_the_mage_pipeline_loads_a_file_of_outcomes(logged, tmp_path):
    settings, _, ids, _ = logged
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({"request_id": ids[:4], "subscribed": ["yes", "no", "no", "yes"]}).to_csv(path, index=False)
    result = mage_run(settings, "outcomes", {"path": str(path)})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "4 outcomes loaded" in result.stdout and "4 of them label a logged prediction" in result.stdout
    assert labelled_predictions(settings)["y"].tolist() == ["yes", "no", "no", "yes"]
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,subscribed\nr1,perhaps\n")
    failed = mage_run(settings, "outcomes", {"path": str(bad)})
    assert failed.returncode != 0 and "row 2: subscribed is 'perhaps', expected yes or no" in (
        failed.stdout + failed.stderr
    )
    assert len(labelled_predictions(settings)) == 4  # nothing overwritten
