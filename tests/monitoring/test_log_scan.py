"""Reading the prediction log in chunks (Postgres by COPY, SQLite by cursor) gives what the whole
window read at once gave: the same periods, counts, outcomes, comparisons and, for a period no
larger than its sample, the same frame."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import threading
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from bankmarketing.data.schema import CATEGORIES, FEATURES, MISSING
from bankmarketing.database import engine_for, prediction_log, prediction_outcome
from bankmarketing.monitoring import log_scan
from bankmarketing.monitoring.drift import PREDICTION, TARGET, labelled_fairness
from bankmarketing.monitoring.log_scan import log_comparisons, log_periods, read_log, scan_log
from bankmarketing.monitoring.missing import missing_by_column
from bankmarketing.monitoring.monitor import MonitorOptions
from bankmarketing.monitoring.periods import period_start
from tests.conftest import migrated

pytestmark = pytest.mark.integration
SINCE = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)
THRESHOLDS = {1: 0.3, 2: 0.4}


def _window(options: MonitorOptions) -> tuple:
    """`read_log`'s window arguments from the options `monitor` takes."""
    return options.since, options.until, options.granularity


def _customers(data_csv, rows: int, seed: int) -> list[dict]:
    frame = pd.read_csv(data_csv, keep_default_na=False)[list(FEATURES)]
    for column in CATEGORIES:
        frame.loc[frame[column].eq(""), column] = MISSING
    picked = frame.sample(rows, random_state=seed, replace=True).to_dict("records")
    records = [{k: v.item() if hasattr(v, "item") else v for k, v in r.items()} for r in picked]
    records[3].pop("education")  # a key the client left out: an empty cell
    records[4]["job"] = " "  # a blank one
    return records


def _write_log(url: str, data_csv, model_name: str, rows: int = 1_500) -> None:
    """Three days of v1 (some shadowed by v2, some answered by v2), outcomes for a third, and
    rows the window leaves out (before it, another model)."""
    rng = np.random.default_rng(0)
    customers = _customers(data_csv, rows, 0)
    log_rows, outcomes = [], []
    for i, features in enumerate(customers):
        at = SINCE + dt.timedelta(seconds=float(rng.uniform(-3_600, 3 * 86_400)))
        arm = rng.choice(["none", "production", "challenger"], p=[0.5, 0.3, 0.2])
        version = 2 if arm == "challenger" else 1
        score = float(rng.beta(1.2, 6))
        log_rows.append(
            {
                "request_id": f"r-{i // 10}:{i % 10}",
                "at": at,
                "model_name": model_name if i % 50 else "another",
                "model_version": version,
                "score": score,
                "decision": score >= THRESHOLDS[version],
                "features": features,
                "arm": None if arm == "none" else str(arm),
                "shadow_version": None if arm == "none" else 3 - version,
                "shadow_score": None if arm == "none" else float(rng.beta(1.2, 6)),
            }
        )
        if i % 3 == 0:
            outcomes.append(
                {
                    "request_id": f"r-{i // 10}:{i % 10}",
                    "subscribed": bool(rng.random() < score),
                    "loaded_at": SINCE,
                    "source": "test",
                }
            )
    with engine_for(url).begin() as connection:
        connection.execute(sa.insert(prediction_log), log_rows)
        connection.execute(sa.insert(prediction_outcome), outcomes)


def _whole_window(url: str, model_name: str, options: MonitorOptions) -> pd.DataFrame:
    """The window read at once, as `monitor` read it before issue 16."""
    columns = ("id", "at", "model_version", "score", "features", "arm", "shadow_version", "shadow_score")
    query = (
        sa.select(*(prediction_log.c[c] for c in columns), prediction_outcome.c.subscribed)
        .select_from(
            prediction_log.outerjoin(
                prediction_outcome, prediction_outcome.c.request_id == prediction_log.c.request_id
            )
        )
        .where(
            (prediction_log.c.model_name == model_name)
            & (prediction_log.c.at >= options.since)
            & (prediction_log.c.at < options.until)
        )
        .order_by(prediction_log.c.id)
    )
    with engine_for(url).connect() as connection:
        logged = pd.DataFrame(connection.execute(query).all(), columns=[*columns, "subscribed"])
    logged["at"] = pd.to_datetime(logged["at"], utc=True)
    logged["start"] = [period_start(moment, options.granularity) for moment in logged["at"]]
    logged[TARGET] = logged["subscribed"].map({True: 1.0, False: 0.0}).astype(float)
    return logged.rename(columns={"score": PREDICTION})


@pytest.fixture(params=["postgres", "sqlite"])
def logged(request, postgres_url, data_csv, settings, tmp_path):
    name = f"scanned_{uuid.uuid4().hex[:8]}"  # its own rows, should the server be shared
    url = (
        postgres_url(name)
        if request.param == "postgres"
        else migrated(f"sqlite:///{tmp_path / 'platform.db'}")
    )
    _write_log(url, data_csv, name)
    return replace(settings, database_url=url, model_name=name)


@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_chunks_give_the_whole_windows_periods(logged, granularity):
    options = MonitorOptions(
        source="log", since=SINCE, until=SINCE + dt.timedelta(days=2), granularity=granularity
    )
    whole = _whole_window(logged.platform_database_url, logged.model_name, options)
    scan = scan_log(
        read_log(logged, logged.model_name, *_window(options), chunk_rows=37),
        THRESHOLDS.get,
        sample_rows=10_000,
    )
    assert scan.rows == len(whole)
    periods = log_periods(scan, granularity)
    groups = list(whole.groupby(["start", "model_version"], sort=True))
    assert [(p.start, p.version) for p in periods] == [(s.to_pydatetime(), v) for (s, v), _ in groups]
    for period, ((_, version), part) in zip(periods, groups, strict=True):
        features = pd.DataFrame.from_records(part["features"].tolist(), columns=list(FEATURES))
        frame = features.assign(**{PREDICTION: part[PREDICTION].to_numpy()})
        if part[TARGET].notna().any():
            frame[TARGET] = part[TARGET].to_numpy()
        pd.testing.assert_frame_equal(period.frame, frame)  # the period is its own sample
        assert period.aggregate.rows == len(frame)
        assert period.aggregate.missing_by_column() == missing_by_column(frame)
        expected = labelled_fairness(frame, THRESHOLDS[version])
        assert len(period.aggregate.fairness_rows()) == len(expected)
        for mine, theirs in zip(period.aggregate.fairness_rows(), expected, strict=True):
            assert mine == pytest.approx(theirs, abs=1e-12)
    assert sum(p.aggregate.labelled for p in periods) == whole[TARGET].notna().sum() > 0
    assert sum(p.aggregate.missing[FEATURES.index("education")] for p in periods) >= 1


def test_shadow_scores_give_the_whole_windows_comparisons(logged):
    options = MonitorOptions(source="log", since=SINCE, until=SINCE + dt.timedelta(days=3))
    whole = _whole_window(logged.platform_database_url, logged.model_name, options)
    scan = scan_log(
        read_log(logged, logged.model_name, *_window(options), chunk_rows=100),
        THRESHOLDS.get,
        sample_rows=10_000,
    )
    comparisons = log_comparisons(scan, "day")
    paired = whole[whole["shadow_version"].notna()]
    assert len(comparisons) == paired["start"].nunique() == 3
    for comparison in comparisons:
        part = paired[paired["start"] == pd.Timestamp(comparison.start)]
        by_challenger = part["arm"] == "challenger"
        assert comparison.scored_rows == len(part)
        assert comparison.served_share == pytest.approx(by_challenger.mean())
        labelled = part[part[TARGET].notna()]
        assert len(comparison.target) == len(labelled) and not np.isnan(comparison.target).any()
        answered = labelled["arm"] == "challenger"
        production = np.where(answered, labelled["shadow_score"], labelled[PREDICTION])
        challenger = np.where(answered, labelled[PREDICTION], labelled["shadow_score"])
        np.testing.assert_array_equal(comparison.production, production)
        np.testing.assert_array_equal(comparison.challenger, challenger)
        np.testing.assert_array_equal(comparison.target, labelled[TARGET])
        assert (comparison.production_version, comparison.challenger_version) == (1, 2)


def test_a_large_period_keeps_a_sample_and_every_rows_counts(logged):
    options = MonitorOptions(source="log", since=SINCE, until=SINCE + dt.timedelta(days=3))
    whole = _whole_window(logged.platform_database_url, logged.model_name, options)
    scan = scan_log(
        read_log(logged, logged.model_name, *_window(options), chunk_rows=50), THRESHOLDS.get, sample_rows=100
    )
    for period in log_periods(scan, "day"):
        part = whole[
            (whole["start"] == pd.Timestamp(period.start)) & (whole["model_version"] == period.version)
        ]
        assert len(period.frame) == min(100, len(part)) and period.aggregate.rows == len(part)
        assert set(period.frame[PREDICTION]) <= set(part[PREDICTION])


def test_leaving_a_copy_early_leaves_the_database_usable(postgres_url, data_csv, settings, monkeypatch):
    """An error while chunks are read ends the COPY; the next query on the engine works."""
    name = f"scanned_{uuid.uuid4().hex[:8]}"
    url = postgres_url(name)
    _write_log(url, data_csv, name, rows=3_000)
    monkeypatch.setattr(log_scan, "COPY_BLOCK_BYTES", 4_096)  # many chunks, the pipe full behind them
    options = MonitorOptions(source="log", since=SINCE, until=SINCE + dt.timedelta(days=3))
    chunks = read_log(replace(settings, database_url=url), name, *_window(options))
    assert len(next(chunks)) > 0
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "monitor-copy"]  # the COPY ended
    with engine_for(url).connect() as connection:
        count = sa.select(sa.func.count()).where(prediction_log.c.model_name == name)
        assert connection.execute(count).scalar() == 2_940  # 1 row in 50 is another model's


def test_features_of_another_type_than_the_contracts_are_read_as_they_are():
    texts = [json.dumps({"age": 41, "job": "admin."}), json.dumps({"age": "forty", "job": 3})]
    frame = log_scan._feature_frame(texts)
    assert frame["age"].tolist() == [41, "forty"] and frame["job"].tolist() == ["admin.", 3]
    assert frame["marital"].isna().all()


MAGE_PYTHON = Path(__file__).resolve().parents[2] / ".venv/mage/bin/python"


@pytest.fixture(scope="module")
def measured_both_ways(data_csv, tmp_path_factory):
    """tests/monitoring/measure_check.py in Mage's environment: `measure` on one 6,000-row period
    read whole and chunked, with a sample of 10,000 (the whole period) and of 2,000."""
    if not MAGE_PYTHON.exists():
        pytest.fail(f"{MAGE_PYTHON} is missing: run `make setup`")
    done = subprocess.run(
        [
            str(MAGE_PYTHON),
            "-m",
            "tests.monitoring.measure_check",
            str(data_csv),
            str(tmp_path_factory.mktemp("r")),
        ],
        cwd=MAGE_PYTHON.parents[3],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_period_no_larger_than_its_sample_is_measured_exactly_as_before(measured_both_ways):
    small = measured_both_ways["small"]
    assert small["sample_rows"] == 6_000
    assert small["chunked"] == small["whole"]


def test_a_larger_period_takes_every_rows_figures_and_the_samples_column_drift(measured_both_ways):
    whole, chunked = measured_both_ways["large"]["whole"], measured_both_ways["large"]["chunked"]
    assert measured_both_ways["large"]["sample_rows"] == 2_000
    assert chunked["rows"] == whole["rows"] == 6_000
    assert chunked["missing_by_column"] == whole["missing_by_column"]
    assert chunked["missing_values_share"] == pytest.approx(whole["missing_values_share"], abs=1e-15)
    assert chunked["prediction_drift_score"] == pytest.approx(whole["prediction_drift_score"], abs=1e-4)
    assert chunked["prediction_drift_detected"] == whole["prediction_drift_detected"]
    assert chunked["prediction_stattest"] == whole["prediction_stattest"]
    assert chunked["prediction_psi"] == pytest.approx(whole["prediction_psi"], rel=1e-2)
    mine, theirs = chunked["performance"], whole["performance"]
    for name in ("labelled_rows", "positives", "predicted_positive_share"):
        assert mine[name] == theirs[name], name
    for name in ("precision", "recall", "f1"):
        assert mine[name] == pytest.approx(theirs[name], abs=1e-12), name
    for name in ("roc_auc", "pr_auc"):
        assert mine[name] == pytest.approx(theirs[name], abs=1e-3), name
    assert len(chunked["fairness"]) == len(whole["fairness"])
    for a, b in zip(chunked["fairness"], whole["fairness"], strict=True):
        assert a == pytest.approx(b, abs=1e-12)
    assert chunked["columns"] == 15 and len(chunked["column_drift"]) == 15  # Evidently on the sample


def test_an_empty_window_gives_no_period(logged):
    options = MonitorOptions(
        source="log", since=SINCE - dt.timedelta(days=30), until=SINCE - dt.timedelta(days=29)
    )
    scan = scan_log(read_log(logged, logged.model_name, *_window(options)), THRESHOLDS.get)
    assert (scan.rows, log_periods(scan, "day"), log_comparisons(scan, "day")) == (0, [], [])
