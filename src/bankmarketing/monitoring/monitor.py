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
import time
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import Field, field_validator, model_validator

from bankmarketing.challenger import CHALLENGER, compare_versions, correct_stored_family
from bankmarketing.config import Settings
from bankmarketing.data import DataError
from bankmarketing.data.prepare import prepared_manifest, read_split, xy
from bankmarketing.data.schema import FEATURES
from bankmarketing.data.split import LATER_MONTHS
from bankmarketing.database import (
    engine_for,
    monitoring_challenger,
    monitoring_column_drift,
    monitoring_drift,
    monitoring_fairness,
    monitoring_missing_values,
    monitoring_performance,
)
from bankmarketing.fairness import fairness_rows
from bankmarketing.monitoring.aggregates import (
    SAMPLE_ROWS,
    exact_period_metrics,
)
from bankmarketing.monitoring.drift import PREDICTION, TARGET, DriftSettings, PeriodMetrics
from bankmarketing.monitoring.log_scan import log_comparisons, log_periods, read_log, scan_log
from bankmarketing.monitoring.missing import missing_by_column, missing_values_share
from bankmarketing.monitoring.periods import Comparison, Period
from bankmarketing.monitoring.reference import REFERENCE_ARTIFACT, log_reference, reference_frame
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
        ["test", *LATER_MONTHS], min_length=1, description="batch periods: test, validation, jun ... nov"
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


def labelled_fairness(frame: pd.DataFrame, threshold: float) -> list[dict]:
    """Fairness rows of the period's customers whose outcome is known (none without outcomes)."""
    if TARGET not in frame:
        return []
    labelled = frame[frame[TARGET].notna()]
    if labelled.empty:
        return []
    y, proba = labelled[TARGET].to_numpy(dtype=int), labelled[PREDICTION].to_numpy()
    rows = fairness_rows(labelled, y, proba, threshold)
    return [{"group_name": row.pop("group"), **row} for row in rows]


def _upsert(connection: sa.Connection, table: sa.Table, key: dict, rows: list[dict]) -> None:
    """Replace the rows of one (model, version, period): a rerun never duplicates."""
    connection.execute(sa.delete(table).where(sa.and_(*(table.c[k] == v for k, v in key.items()))))
    if rows:
        connection.execute(sa.insert(table), [key | row for row in rows])


class DatabaseUnavailable(ConnectionError):
    """The platform database did not answer while a period was stored, even on a second try."""


#: Pause before the one retry of a period's transaction after a connection error.
RETRY_PAUSE_S = 5.0


def _transaction(url: str, write, what: str) -> None:
    """Run `write` in one transaction; once more after a pause if the connection failed.

    The transaction is all of a period or nothing, and rows are replaced by key, so a retry
    or a rerun never duplicates. A second connection error stops the run naming the database.
    """
    for attempt in (1, 2):
        try:
            with engine_for(url).begin() as connection:
                write(connection)
            return
        except sa.exc.DBAPIError as exc:
            if not (exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)):
                raise
            reason = str(exc.orig or exc).strip().splitlines()[0]
            if attempt == 2:
                database = sa.engine.make_url(url).render_as_string(hide_password=True)
                raise DatabaseUnavailable(
                    f"the platform database {database} is unreachable ({reason}): {what} was not "
                    "stored (the periods before it are); run monitor again when the database is "
                    "back — a rerun replaces rows, it never duplicates them"
                ) from None
            log.warning("storing %s: database connection failed (%s), retrying once", what, reason)
            time.sleep(RETRY_PAUSE_S)


def store(
    settings: Settings,
    model_name: str,
    period: Period,
    metrics: PeriodMetrics,
    run_label: str,
    min_rows: int,
    report_path: Path | None,
) -> dict:
    """Upsert a period's rows into the monitoring tables in one transaction."""
    key = {"model_name": model_name, "model_version": period.version, "period": period.name}
    common = {"period_start": period.start, "period_end": period.end, "computed_at": dt.datetime.now(dt.UTC)}
    values = asdict(metrics)
    column_drift, performance = values.pop("column_drift"), values.pop("performance")
    fairness, missing = values.pop("fairness"), values.pop("missing_by_column")
    drift_row = (
        common
        | values
        | {
            "source": period.source,
            "min_rows": min_rows,
            "enough_rows": metrics.rows >= min_rows,
            "report_path": str(report_path) if report_path and report_path.is_file() else None,
            "run_label": run_label,
        }
    )

    def write(connection: sa.Connection) -> None:
        _upsert(connection, monitoring_drift, key, [drift_row])
        _upsert(connection, monitoring_column_drift, key, [common | row for row in column_drift])
        _upsert(connection, monitoring_missing_values, key, [common | row for row in missing])
        _upsert(connection, monitoring_performance, key, [common | performance] if performance else [])
        _upsert(connection, monitoring_fairness, key, [common | row for row in fairness])

    _transaction(settings.platform_database_url, write, f"period {period.name} of v{period.version}")
    summary = key | drift_row | {"performance": performance}
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in summary.items()}


def store_comparison(
    settings: Settings,
    model_name: str,
    comparison: Comparison,
    thresholds: dict[int, float],
    challenger_fairness: bool,
) -> dict:
    """Compare the two versions on the period's labelled customers; upsert the row.

    With `challenger_fairness` (the challenger answered for none of the period's customers:
    batches, shadow mode), its fairness rows on the same customers are stored as well.
    """
    known = ~np.isnan(comparison.target)
    measured = compare_versions(
        comparison.target[known],
        comparison.production[known],
        comparison.challenger[known],
        thresholds[comparison.production_version],
        thresholds[comparison.challenger_version],
    )
    key = {
        "model_name": model_name,
        "production_version": comparison.production_version,
        "challenger_version": comparison.challenger_version,
        "period": comparison.name,
    }
    row = {
        "period_start": comparison.start,
        "period_end": comparison.end,
        "computed_at": dt.datetime.now(dt.UTC),
        "source": comparison.source,
        "scored_rows": len(comparison.target) if comparison.scored_rows is None else comparison.scored_rows,
        "challenger_served_share": comparison.served_share,
        **measured,
    }
    fairness_key, fairness = None, []
    if challenger_fairness:
        version = comparison.challenger_version
        fairness_key = {"model_name": model_name, "model_version": version, "period": comparison.name}
        scored = comparison.features.assign(**{PREDICTION: comparison.challenger, TARGET: comparison.target})
        common = {k: row[k] for k in ("period_start", "period_end", "computed_at")}
        fairness = [common | r for r in labelled_fairness(scored, thresholds[version])]

    def write(connection: sa.Connection) -> None:
        _upsert(connection, monitoring_challenger, key, [row])
        correct_stored_family(
            connection,
            model_name,
            comparison.production_version,
            comparison.challenger_version,
            comparison.source,
        )
        if fairness_key:
            _upsert(connection, monitoring_fairness, fairness_key, fairness)

    _transaction(
        settings.platform_database_url, write, f"the challenger comparison of period {comparison.name}"
    )
    summary = key | row
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in summary.items()}


def drift_rule(records: list[dict], threshold: float) -> dict | None:
    """Grafana's rule, evaluated here: the newest period with enough rows, if its drift > threshold."""
    tested = [r for r in records if r["enough_rows"] and r["prediction_drift_score"] is not None]
    newest = max(tested, key=lambda r: r["period_start"], default=None)
    return newest if newest and newest["prediction_drift_score"] > threshold else None


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


class AlertNotDelivered(ConnectionError):
    """The drift rule fired but the alert receiver did not take the alert."""


#: The rule's title and fixed labels, as in grafana/provisioning/alerting/rules.yaml.
DRIFT_RULE = "Prediction drift"
DRIFT_RULE_LABELS = {"severity": "warning", "team": "ml-platform"}


def post_drift_alert(settings: Settings, options: MonitorOptions, result: dict) -> dict:
    """Post Grafana's payload for the period the drift rule fired on, where Grafana is absent.

    The alert starts at the period's end, so rerunning `monitor` on the same data posts the
    same alert again and the receiver drops it as a duplicate.
    """
    firing = result["firing"]
    if firing is None:
        return {"fired": False, "posted": False, "reason": "the newest tested period is below the threshold"}
    summary = {"fired": True, "period": firing["period"], "value": firing["prediction_drift_score"]}
    if not options.alert or not settings.alert_receiver_url:
        why = "alert=false" if not options.alert else "ALERT_RECEIVER_URL is not set"
        return summary | {"posted": False, "reason": why}
    from bankmarketing.alerts import grafana_payload, post_alert

    payload = grafana_payload(
        DRIFT_RULE,
        labels={
            "model_name": result["model_name"],
            "model_version": str(firing["model_version"]),
            "period": firing["period"],
            **DRIFT_RULE_LABELS,
        },
        value=firing["prediction_drift_score"],
        starts_at=dt.datetime.fromisoformat(firing["period_end"]),
        threshold=options.prediction_threshold,
    )
    import requests

    try:
        reply = post_alert(
            settings.alert_receiver_url,
            payload,
            settings.alert_receiver_token,
            hmac_secret=settings.alert_receiver_hmac_secret,
        )
    except requests.RequestException as exc:
        raise AlertNotDelivered(
            f"the drift alert for period {firing['period']} could not reach the alert receiver at "
            f"{settings.alert_receiver_url} ({type(exc).__name__}); the metrics are stored: "
            "start the receiver (make up) and run monitor again"
        ) from None
    if not reply["ok"]:
        raise AlertNotDelivered(
            f"the alert receiver at {settings.alert_receiver_url} refused the drift alert: "
            f"HTTP {reply['status_code']} {reply['body']}"
        )
    return summary | {"posted": True, "reply": reply}


def monitor_and_alert(settings: Settings, options: MonitorOptions) -> dict:
    """`monitor` then the drift rule, as the pipeline runs them (the CLI's path)."""
    result = monitor(settings, options, options.triggered_by or "cli:monitor")
    return result | {"alert": post_drift_alert(settings, options, result)}
