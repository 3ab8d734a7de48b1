"""The predictor's own log as the current data: predictions, late outcomes, then `monitor`."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from bankmarketing.challenger import assigned_to_challenger, compare_versions
from bankmarketing.data.prepare import current_manifest, read_split, xy
from bankmarketing.data.schema import FEATURES
from bankmarketing.database import (
    engine_for,
    monitoring_challenger,
    monitoring_drift,
    monitoring_performance,
    prediction_outcome,
)
from bankmarketing.predictions.outcomes import load_outcomes
from bankmarketing.registry import client_for, load_scorer
from tests.conftest import mage_run, set_challenger

pytestmark = pytest.mark.integration


def _customers(frame: pd.DataFrame) -> list[dict]:
    return frame[list(FEATURES)].to_dict("records")  # native Python values, as JSON clients send


def monitor_todays_log(settings) -> None:
    """`monitor` through Mage on the prediction log of the last day (and the next hour)."""
    now = dt.datetime.now(dt.UTC)
    window = {
        "since": (now - dt.timedelta(days=1)).isoformat(),
        "until": (now + dt.timedelta(hours=1)).isoformat(),
    }
    result = mage_run(settings, "monitor", {"source": "log", "alert": False, **window})
    assert result.returncode == 0, " ".join((result.stdout + result.stderr).split())[-3000:]


def test_logged_predictions_with_late_outcomes_are_monitored_per_day(
    app_factory, served, postgres_url, tmp_path
):
    settings = served[0]
    url = postgres_url("monitoring_log")
    app = app_factory(settings={"database_url": url})
    client = app.test_client()
    june = read_split(current_manifest(settings), "jun").head(300).reset_index(drop=True)
    for batch in range(3):
        part = june.iloc[batch * 100 : (batch + 1) * 100]
        reply = client.post(
            "/predict/batch", json={"customers": _customers(part)}, headers={"X-Request-ID": f"june-{batch}"}
        )
        assert reply.status_code == 200, reply.get_json()
    app.extensions["bankmarketing"]["predictions"].close()  # write what is queued

    # outcomes arrive later, for the first two batches only
    outcomes = pd.DataFrame(
        {
            "request_id": [f"june-{i // 100}:{i % 100}" for i in range(200)],
            "subscribed": june["y"].head(200),
        }
    )
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    monitored = replace(settings, database_url=url)
    assert load_outcomes(monitored, tmp_path / "outcomes.csv") == {"loaded": 200, "matched_predictions": 200}

    monitor_todays_log(monitored)

    engine = engine_for(url)
    with engine.connect() as connection:
        drift = connection.execute(sa.select(monitoring_drift)).mappings().all()
        performance = connection.execute(sa.select(monitoring_performance)).mappings().all()
    (today,) = drift  # one day, one model version
    assert (today["source"], today["rows"], today["enough_rows"]) == ("log", 300, True)
    assert today["period"] == dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert today["prediction_drift_score"] is not None and today["drifted_columns"] >= 1  # June is not May
    assert sum(r["labelled_rows"] for r in performance) == 200
    assert sum(r["positives"] for r in performance) == int((june["y"].head(200) == "yes").sum())


def test_a_split_challenger_is_compared_with_production_once_outcomes_arrive(
    app_factory, served, postgres_url, tmp_path
):
    settings, versions = served[0], served[1]
    challenger = set_challenger(served)
    url = postgres_url("monitoring_challenger_log")
    app = app_factory(settings={"database_url": url}, challenger_mode="split", challenger_share=0.3)
    client = app.test_client()
    june = read_split(current_manifest(settings), "jun").head(600).reset_index(drop=True)
    ids = [f"bank-customer-{i}" for i in range(len(june))]
    for batch in range(6):
        rows = slice(batch * 100, (batch + 1) * 100)
        body = {"customers": _customers(june.iloc[rows]), "customer_ids": ids[rows]}
        reply = client.post("/predict/batch", json=body, headers={"X-Request-ID": f"split-{batch}"})
        assert reply.status_code == 200, reply.get_json()
    app.extensions["bankmarketing"]["predictions"].close()
    outcomes = pd.DataFrame(
        {"request_id": [f"split-{i // 100}:{i % 100}" for i in range(600)], "subscribed": june["y"]}
    )
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    monitored = replace(settings, database_url=url)
    assert load_outcomes(monitored, tmp_path / "outcomes.csv")["matched_predictions"] == 600

    monitor_todays_log(monitored)

    with engine_for(url).connect() as connection:
        (row,) = connection.execute(sa.select(monitoring_challenger)).mappings().all()
        drift = connection.execute(sa.select(monitoring_drift)).mappings().all()
    assert {r["model_version"] for r in drift} == {int(versions["production"]), int(challenger)}  # each arm
    assert (row["source"], row["scored_rows"], row["labelled_rows"]) == ("log", 600, 600)
    assert (row["production_version"], row["challenger_version"]) == (
        int(versions["production"]),
        int(challenger),
    )
    assert row["challenger_served_share"] == pytest.approx(
        np.mean(assigned_to_challenger(ids, challenger, 0.3))
    )
    X, y = xy(june)
    registry = client_for(settings.tracking_uri)
    scores, thresholds = zip(
        *(
            (
                load_scorer(settings.tracking_uri, settings.model_name, v).score_frame(X),
                float(registry.get_model_version(settings.model_name, v).tags["threshold"]),
            )
            for v in (versions["production"], challenger)
        ),
        strict=True,
    )
    expected = compare_versions(y, *scores, *thresholds)
    assert row["challenger_recall"] == pytest.approx(expected["challenger_recall"], abs=1e-12)
    assert row["roc_auc_difference"] == pytest.approx(expected["roc_auc_difference"], abs=1e-9)
    assert row["p_value"] == pytest.approx(expected["p_value"], abs=1e-9)
    assert row["verdict"] == expected["verdict"]


def test_bad_outcome_files_name_the_row_and_load_nothing(settings, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("request_id,subscribed,observed_at\na,yes,2026-01-02\nb,maybe,\n,no,\na,no,yesterday\n")
    with pytest.raises(Exception) as error:
        load_outcomes(settings, path)
    message = str(error.value)
    assert "row 3: subscribed is 'maybe', expected yes or no" in message
    assert "row 4: request_id must be 1-64 characters" in message
    assert "row 5: request_id 'a' appears twice" in message
    assert "row 5: observed_at 'yesterday' is not a date-time" in message
    with engine_for(settings.platform_database_url).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(prediction_outcome)).scalar() == 0


def test_reloading_an_outcome_replaces_it(settings, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("request_id,subscribed\nr1,yes\nr2,no\n")
    assert load_outcomes(settings, path) == {"loaded": 2, "matched_predictions": 0}
    path.write_text("request_id,subscribed\nr1,no\n")
    load_outcomes(settings, path)
    with engine_for(settings.platform_database_url).connect() as connection:
        rows = dict(
            connection.execute(
                sa.select(prediction_outcome.c.request_id, prediction_outcome.c.subscribed)
            ).all()
        )
    assert rows == {"r1": False, "r2": False}


def test_a_file_without_the_columns_is_refused(settings, tmp_path):
    path = tmp_path / "outcomes.csv"
    path.write_text("id,outcome\n1,yes\n")
    with pytest.raises(Exception, match=r"lacks column\(s\) \['request_id', 'subscribed'\]"):
        load_outcomes(settings, path)
