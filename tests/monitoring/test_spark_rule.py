"""The drift rule's statistic on Spark (aggregations only) equals `monitor`'s on the same rows."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from bankmarketing.monitoring.aggregates import ScoreHistogram, wasserstein_normed
from bankmarketing.monitoring.alerting import drift_rule
from bankmarketing.monitoring.periods import period_name, period_starts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("test-spark-rule")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "Europe/Paris")  # the function must not depend on it
        .getOrCreate()
    )
    yield session
    session.stop()


def _log(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    at = pd.Timestamp("2026-11-02T00:00:00Z") + pd.to_timedelta(rng.uniform(0, 3 * 86_400, rows), unit="s")
    version = rng.choice([1, 2], rows, p=[0.8, 0.2])
    day = (at - pd.Timestamp("2026-11-02T00:00:00Z")).days.to_numpy()
    score = np.where(day == 2, rng.beta(2, 5, rows), rng.beta(1.2, 7, rows))  # the third day drifts
    return pd.DataFrame({"at": at, "model_version": version, "score": score})


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_spark_gives_monitors_statistic_and_decision(spark, granularity):
    from bankmarketing.monitoring.spark_rule import rule_statistics

    log = _log(30_000)
    references = {
        1: np.random.default_rng(4).beta(1.2, 7, 3_000),
        2: np.random.default_rng(5).beta(1.3, 7, 2_000),
    }
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # naive instants are read as UTC
    frame = spark.createDataFrame(log.assign(at=log["at"].dt.tz_convert(None)))
    spark.conf.set("spark.sql.session.timeZone", "Europe/Paris")  # periods must not follow it
    records = rule_statistics(frame, references, granularity, min_rows=100)

    expected = []
    starts = period_starts(log["at"], granularity)
    for (start, version), part in log.groupby([starts, "model_version"], sort=True):
        histogram = ScoreHistogram()
        histogram.add(part["score"].to_numpy())
        enough = len(part) >= 100
        expected.append(
            {
                "period": period_name(start.to_pydatetime(), granularity),
                "model_version": int(version),
                "rows": len(part),
                "enough_rows": enough,
                "prediction_drift_score": wasserstein_normed(references[int(version)], histogram)
                if enough
                else None,
            }
        )
    assert [(r["period"], r["model_version"], r["rows"], r["enough_rows"]) for r in records] == [
        (r["period"], r["model_version"], r["rows"], r["enough_rows"]) for r in expected
    ]
    for mine, theirs in zip(records, expected, strict=True):
        if theirs["prediction_drift_score"] is None:
            assert mine["prediction_drift_score"] is None
        else:
            assert mine["prediction_drift_score"] == pytest.approx(theirs["prediction_drift_score"], abs=1e-9)
    firing = drift_rule(records, 0.1)
    assert firing is not None and firing["period"].startswith("2026-11-04")
    assert (
        firing["period"] == drift_rule([r | {"period_start": r["period"]} for r in expected], 0.1)["period"]
    )
    assert spark.conf.get("spark.sql.session.timeZone") == "Europe/Paris"  # left as it was
