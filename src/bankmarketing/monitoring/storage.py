"""Storing `monitor`'s results: each period (and each challenger comparison) in one
transaction, its rows replaced by key, retried once after a lost connection."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bankmarketing.challenger import compare_versions, correct_stored_family
from bankmarketing.config import Settings
from bankmarketing.database import (
    engine_for,
    monitoring_challenger,
    monitoring_column_drift,
    monitoring_drift,
    monitoring_fairness,
    monitoring_missing_values,
    monitoring_performance,
)
from bankmarketing.monitoring.drift import PREDICTION, TARGET, PeriodMetrics, labelled_fairness
from bankmarketing.monitoring.periods import Comparison, Period

log = logging.getLogger(__name__)


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
