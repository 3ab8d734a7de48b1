"""The drift rule's statistic on Spark, for a prediction log larger than one machine.

`rule_statistics` takes the log as a Spark DataFrame (`at`, `model_version`, `score`: the
`prediction_log` columns, from Parquet exports or JDBC) and computes, per period and model
version, what the rule needs: the row count and the score's histogram in the bins `monitor`
uses (`aggregates.SCORE_BINS`: count, sum, min and max per bin). Spark aggregates; only those
per-bin rows (at most SCORE_BINS per period and version) reach the driver, never a log row.
The normed Wasserstein distance to the version's reference then comes from the same function
as in `monitor` (`aggregates.wasserstein_normed`), so both engines decide alike on the same
data; `alerting.drift_rule` decides on the returned records.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from bankmarketing.monitoring.aggregates import SCORE_BINS, ScoreHistogram, wasserstein_normed

#: Spark's `date_trunc` unit per `monitor` granularity (a week starts on Monday in both).
TRUNCATE = {"hour": "hour", "day": "day", "week": "week"}


def score_histograms(log, granularity: str) -> dict[tuple, ScoreHistogram]:
    """Per (period start, model version): the score's histogram, aggregated by Spark."""
    from pyspark.sql import functions as F

    spark = log.sparkSession
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # periods are UTC, as in `monitor`
    try:
        score = F.col("score").cast("double")
        bins = F.least(F.greatest(F.floor(score * F.lit(float(SCORE_BINS))), F.lit(0)), F.lit(SCORE_BINS - 1))
        per_bin = (
            log.select(
                F.date_trunc(TRUNCATE[granularity], F.col("at")).alias("start"),
                F.col("model_version").cast("int").alias("version"),
                bins.cast("int").alias("bin"),
                score.alias("score"),
            )
            .groupBy("start", "version", "bin")
            .agg(
                F.count(F.lit(1)).alias("rows"),
                F.sum("score").alias("total"),
                F.min("score").alias("low"),
                F.max("score").alias("high"),
            )
            .collect()
        )
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    grouped: dict[tuple, list] = defaultdict(list)
    for row in per_bin:
        grouped[(row["start"], row["version"])].append(row)
    histograms = {}
    for key, rows in grouped.items():
        counts, sums = np.zeros(SCORE_BINS, dtype=np.int64), np.zeros(SCORE_BINS)
        at = np.array([r["bin"] for r in rows])
        counts[at] = [r["rows"] for r in rows]
        sums[at] = [r["total"] for r in rows]
        low, high = min(r["low"] for r in rows), max(r["high"] for r in rows)
        histograms[key] = ScoreHistogram.of(counts, sums, low, high)
    return histograms


def rule_statistics(
    log, references: dict[int, np.ndarray], granularity: str = "day", min_rows: int = 200
) -> list[dict]:
    """Per period and version, as `monitor` stores them for the rule: `period`,
    `period_start`, `model_version`, `rows`, `enough_rows`, `prediction_drift_score` (normed
    Wasserstein to the version's reference scores; None below `min_rows`)."""
    records = []
    for (start, version), histogram in sorted(score_histograms(log, granularity).items()):
        start = start.replace(tzinfo=None)  # Spark returns the UTC wall time, naive
        enough = histogram.rows >= min_rows
        records.append(
            {
                "period": start.strftime("%Y-%m-%dT%H" if granularity == "hour" else "%Y-%m-%d"),
                "period_start": start.isoformat(),
                "model_version": int(version),
                "rows": histogram.rows,
                "enough_rows": enough,
                "prediction_drift_score": wasserstein_normed(references[int(version)], histogram)
                if enough
                else None,
            }
        )
    return records
