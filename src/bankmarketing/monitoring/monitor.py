"""The `monitor` stage: one period at a time against the production version's reference.

A period is either a labelled batch of the prepared data (the season scenario: `test`,
`jun` ... `nov`) or a time slice of the prediction log, joined to any outcomes loaded since.
Results are upserted by (model, version, period), so a rerun replaces rows, never adds.
Where a challenger scored the same customers (its alias on batches; the log's shadow scores),
the two versions are compared on the labelled ones (`monitoring_challenger`).

The log is read in chunks and never held whole (`log_scan.py`): per (period, version) `monitor`
keeps exact aggregates and a bounded sample (`aggregates.py`).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
from pathlib import Path
from typing import Literal

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import Field, field_validator, model_validator

from bankmarketing.challenger import CHALLENGER
from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.prepare import prepared_manifest, read_split, xy
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.split import LATER_MONTHS, SEASON_PERIODS
from bankmarketing.monitoring.aggregates import (
    SAMPLE_ROWS,
    exact_period_metrics,
)
from bankmarketing.monitoring.alerting import drift_rule, post_drift_alert
from bankmarketing.monitoring.drift import PREDICTION, TARGET, DriftSettings, PeriodMetrics, labelled_fairness
from bankmarketing.monitoring.log_scan import log_comparisons, log_periods, read_log, scan_log
from bankmarketing.monitoring.missing import missing_by_column, missing_values_share
from bankmarketing.monitoring.periods import Comparison, Period
from bankmarketing.monitoring.reference import REFERENCE_ARTIFACT, log_reference, reference_frame
from bankmarketing.monitoring.storage import store, store_comparison
from bankmarketing.options import StageOptions, only_known
from bankmarketing.registry import load_scorer, required_version, use_tracking_server, version_behind

log = logging.getLogger(__name__)

#: The data has months but no years: batch periods get nominal dates on one calendar, the
#: reference window Dec 2007-May 2008 and each later month in 2008, so they sort in order.
_REFERENCE_WINDOW = (dt.datetime(2007, 12, 1, tzinfo=dt.UTC), dt.datetime(2008, 6, 1, tzinfo=dt.UTC))
BATCH_PERIODS = ("reference", "validation", "test", *LATER_MONTHS)


class MonitorOptions(StageOptions):
    """Parameters of `monitor` (Mage variables / CLI flags of the same names)."""

    alias: str = Field("production", description="registry alias whose reference is compared")
    source: Literal["batch", "log"] = Field("batch", description="labelled batches or the prediction log")
    periods: list[str] = Field(
        list(SEASON_PERIODS), min_length=1, description="batch periods: test, validation, jun ... nov"
    )
    since: dt.datetime | None = Field(None, description="log: first instant (default: until - 7 days)")
    until: dt.datetime | None = Field(None, description="log: end, exclusive (default: now)")
    granularity: Literal["hour", "day", "week"] = Field("day", description="log: length of a period")
    min_rows: int = Field(200, ge=1, description="periods with fewer rows are marked, not tested")
    sample_rows: int = Field(
        SAMPLE_ROWS,
        ge=100,
        description="log: a larger period's column drift and report run on a uniform sample of "
        "this many rows; its counts, performance and the rule's statistic use every row",
    )
    prediction_stattest: str = Field("wasserstein", description="Evidently stattest for the score")
    prediction_threshold: float = Field(0.1, gt=0, description="prediction drift alert threshold")
    dataset_drift_share: float = Field(0.5, gt=0, le=1, description="share of drifted columns = drift")
    alert: bool = Field(True, description="post the drift alert to ALERT_RECEIVER_URL when it fires")
    triggered_by: str | None = Field(None, description="who or what started the run")
    challenger_alias: str = Field(
        CHALLENGER,
        description="batch: also score with this alias's version and compare it with production "
        "('' or no such alias: no comparison); log: comparisons come from the shadow scores",
    )

    @field_validator("periods")
    @classmethod
    def _known_periods(cls, periods: list[str]) -> list[str]:
        return only_known(periods, BATCH_PERIODS, "period")

    @model_validator(mode="after")
    def _ordered_window(self) -> MonitorOptions:
        if self.since and self.until and self.since >= self.until:
            raise ValueError(f"since ({self.since}) must be before until ({self.until})")
        return self


def log_window(options: MonitorOptions) -> tuple[dt.datetime, dt.datetime]:
    """The window's first instant and its exclusive end (default: the last 7 days)."""
    until = options.until or dt.datetime.now(dt.UTC)
    return options.since or until - dt.timedelta(days=7), until


def load_reference(settings: Settings, version: ModelVersion) -> pd.DataFrame:
    """The version's stored reference; built from its validation split (and stored) if missing."""
    run_id = version.tags.get("run_id") or version.run_id
    try:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{REFERENCE_ARTIFACT}")
        return pd.read_parquet(path)
    except (MlflowException, OSError):
        log.info("version %s has no stored reference: building it from validation", version.version)
    manifest = prepared_manifest(settings, version.tags["prepared_id"])
    X, y = xy(read_split(manifest, "validation"))
    scorer = load_scorer(settings.tracking_uri, version.name, version.version)
    frame = reference_frame(X, y, scorer.score_frame(X))
    log_reference(frame, run_id)
    return frame


def _batch_dates(name: str) -> tuple[dt.datetime, dt.datetime]:
    if name not in LATER_MONTHS:
        return _REFERENCE_WINDOW
    month = 6 + LATER_MONTHS.index(name)
    return dt.datetime(2008, month, 1, tzinfo=dt.UTC), dt.datetime(2008, month + 1, 1, tzinfo=dt.UTC)


def batch_comparisons(
    settings: Settings, challenger: ModelVersion, periods: list[Period]
) -> list[Comparison]:
    """The challenger's scores of the customers of production's batch periods, beside production's."""
    scorer = load_scorer(settings.tracking_uri, challenger.name, challenger.version)
    return [
        Comparison(
            period.name,
            period.start,
            period.end,
            "batch",
            period.version,
            int(challenger.version),
            period.frame[list(FEATURES)],
            period.frame[TARGET].to_numpy(dtype=float),
            period.frame[PREDICTION].to_numpy(),
            scorer.score_frame(period.frame[list(FEATURES)]),
            None,
        )
        for period in periods
    ]


def batch_periods(settings: Settings, version: ModelVersion, names: list[str]) -> list[Period]:
    """Labelled periods of the prepared data the version was trained on, scored by it."""
    manifest = prepared_manifest(settings, version.tags["prepared_id"])
    scorer = load_scorer(settings.tracking_uri, version.name, version.version)
    periods = []
    for name in names:
        X, y = xy(read_split(manifest, name))
        frame = X.reset_index(drop=True).assign(**{PREDICTION: scorer.score_frame(X), TARGET: y})
        start, end = _batch_dates(name)
        periods.append(Period(name, start, end, "batch", int(version.version), frame))
    return periods


def measure(
    period: Period, reference: pd.DataFrame, threshold: float, options: MonitorOptions, report_dir: Path
) -> PeriodMetrics:
    """Evidently metrics of a period; a period below `min_rows` gets counts only, no tests.

    A log period larger than its sample: Evidently's column drift and the report come from the
    sample; rows, missing values, the score's drift and PSI, performance and fairness from the
    whole period's aggregates (`aggregates.exact_period_metrics`).
    """
    from bankmarketing.monitoring.drift import live_performance, period_metrics

    aggregate = period.aggregate
    sampled = aggregate is not None and aggregate.rows > len(period.frame)
    rows = aggregate.rows if sampled else len(period.frame)
    if rows < options.min_rows:
        if sampled:
            metrics = PeriodMetrics(
                rows=rows,
                missing_values_share=aggregate.missing_values_share(),
                missing_by_column=aggregate.missing_by_column(),
                performance=aggregate.performance(),
            )
        else:
            missing = missing_by_column(period.frame)
            metrics = PeriodMetrics(
                rows=len(period.frame),
                missing_values_share=missing_values_share(period.frame, missing),
                missing_by_column=missing,
                performance=live_performance(period.frame, threshold),
            )
    else:
        settings = DriftSettings(
            options.prediction_stattest, options.prediction_threshold, options.dataset_drift_share
        )
        report = report_dir / f"{period.name}.html"
        metrics = period_metrics(reference, period.frame, threshold, settings, report)
        if sampled:
            on_sample = metrics.prediction_drift_score
            metrics = exact_period_metrics(metrics, aggregate, reference[PREDICTION].to_numpy(), settings)
            log.info(
                "period %s v%s: %d rows, sample of %d (its %s %.4f, the whole period's %.4f)",
                period.name,
                period.version,
                rows,
                len(period.frame),
                options.prediction_stattest,
                on_sample,
                metrics.prediction_drift_score,
            )
    metrics.fairness = aggregate.fairness_rows() if sampled else labelled_fairness(period.frame, threshold)
    return metrics


def _challenger(client: MlflowClient, name: str, alias: str, production: ModelVersion) -> ModelVersion | None:
    """The alias's version when it exists and is not production's."""
    version = version_behind(client, name, alias) if alias else None
    return version if version is not None and version.version != production.version else None


def monitor(settings: Settings, options: MonitorOptions, run_label: str) -> dict:
    """Measure and store every period; return the stored rows and the periods whose alert fires."""
    if importlib.util.find_spec("evidently") is None:
        raise DataError(
            "Evidently is installed in the Mage environment only: run `make monitor` "
            "or .venv/mage/bin/bankmarketing monitor"
        )
    client = use_tracking_server(settings.tracking_uri)
    if options.source == "batch":
        production = required_version(client, settings.model_name, options.alias)
        periods = batch_periods(settings, production, options.periods)
        challenger = _challenger(client, settings.model_name, options.challenger_alias, production)
        comparisons = batch_comparisons(settings, challenger, periods) if challenger else []
    else:
        thresholds_of: dict[int, float] = {}

        def threshold_of(number: int) -> float:
            if number not in thresholds_of:
                version = client.get_model_version(settings.model_name, str(number))
                thresholds_of[number] = float(version.tags["threshold"])
            return thresholds_of[number]

        since, until = log_window(options)
        chunks = read_log(settings, settings.model_name, since, until, options.granularity)
        scan = scan_log(chunks, threshold_of, options.sample_rows)
        periods = log_periods(scan, options.granularity)
        comparisons = log_comparisons(scan, options.granularity)
        if not periods:
            log.warning("no predictions of %s logged in the window", settings.model_name)
    references: dict[int, tuple[pd.DataFrame, float]] = {}
    records = []
    for period in periods:
        if period.version not in references:
            version = client.get_model_version(settings.model_name, str(period.version))
            references[period.version] = (load_reference(settings, version), float(version.tags["threshold"]))
        reference, threshold = references[period.version]
        report_dir = settings.data_dir / "monitoring" / "reports" / f"{settings.model_name}-v{period.version}"
        metrics = measure(period, reference, threshold, options, report_dir.resolve())
        report = report_dir.resolve() / f"{period.name}.html"
        records.append(
            store(settings, settings.model_name, period, metrics, run_label, options.min_rows, report)
        )
        log.info(
            "%s v%s %s: %d rows, prediction drift %s",
            settings.model_name,
            period.version,
            period.name,
            metrics.rows,
            metrics.prediction_drift_score,
        )
    thresholds: dict[int, float] = {}
    measured = {(period.version, period.name) for period in periods}  # the versions' own periods
    compared = []
    for comparison in comparisons:
        for number in (comparison.production_version, comparison.challenger_version):
            if number not in thresholds:
                version = client.get_model_version(settings.model_name, str(number))
                thresholds[number] = float(version.tags["threshold"])
        own_period = (comparison.challenger_version, comparison.name) in measured
        compared.append(
            store_comparison(settings, settings.model_name, comparison, thresholds, not own_period)
        )
        log.info(
            "%s v%s vs challenger v%s %s: %s",
            settings.model_name,
            comparison.production_version,
            comparison.challenger_version,
            comparison.name,
            compared[-1]["verdict"],
        )
    return {
        "model_name": settings.model_name,
        "versions": sorted(references),
        "source": options.source,
        "periods": records,
        "challenger": compared,
        "firing": drift_rule(records, options.prediction_threshold),
    }


def monitor_and_alert(settings: Settings, options: MonitorOptions) -> dict:
    """`monitor` then the drift rule, as the pipeline runs them (the CLI's path)."""
    result = monitor(settings, options, options.triggered_by or "cli:monitor")
    return result | {"alert": post_drift_alert(settings, options, result)}
