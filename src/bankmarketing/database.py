"""The platform database: its tables, their migrations and an engine per URL (SQLite or Postgres).

The schema is owned by the Alembic migrations in `bankmarketing/migrations`; the tables below
mirror them for queries. Migrating is an explicit step (`bankmarketing migrate`, run by `make up`,
compose's `migrate` service and the tests), under a lock so concurrent runs never race. Every
process checks the schema when it first opens the database and stops with the command to run
if it is behind, rather than failing later on a missing table or column.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()
#: Alembic's bookkeeping table; its own name so it never meets MLflow's `alembic_version`.
VERSION_TABLE = "bankmarketing_schema_version"
#: Any constant: the Postgres advisory lock held while migrating.
_MIGRATION_LOCK = 0x62616E6B

deployment_audit = sa.Table(
    "deployment_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    # promote | refuse | rollback | keep | challenge | withdraw
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("triggered_by", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(32), nullable=True),
    sa.Column("candidate_value", sa.Float, nullable=True),
    sa.Column("production_value", sa.Float, nullable=True),
    sa.Column("margin", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    # the rows the gate judged on (evaluation_set.py); empty for rollbacks and withdrawals
    sa.Column("evaluation_set", sa.Text, nullable=True),
    sa.Column("evaluation_rows", sa.Integer, nullable=True),
    sa.Column("evaluation_subscribers", sa.Integer, nullable=True),
)


prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.Boolean, nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    # The writer's key of the row (writer id and sequence): a row written twice (spilled to disk,
    # committed, the file not yet deleted when the process died) is inserted once.
    sa.Column("log_key", sa.String(40), nullable=True),
    # With a challenger (PREDICTOR_CHALLENGER_MODE): which version answered (`production` or
    # `challenger`; the answer is model_version/score/decision) and the other version's score,
    # computed and not returned.
    sa.Column("arm", sa.String(16), nullable=True),
    sa.Column("shadow_version", sa.Integer, nullable=True),
    sa.Column("shadow_score", sa.Float, nullable=True),
    sa.Index("uq_prediction_log_key", "log_key", unique=True),
)


METRIC_COLUMNS = (
    "roc_auc",
    "pr_auc",
    "pr_auc_baseline",
    "f1",
    "precision",
    "recall",
    "brier",
    "ece",
    "lift_top_decile",
    "accuracy",
    "accuracy_majority_baseline",
    "threshold",
)

model_evaluation = sa.Table(
    "model_evaluation",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("split", sa.String(32), nullable=False),
    sa.Column("data_version", sa.String(80), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float, nullable=False) for name in METRIC_COLUMNS),
    sa.Column("mlflow_run_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("model_name", "model_version", "split", "data_version", name="uq_model_evaluation"),
)


def _period_key() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    ]


#: One row per period and model version: prediction drift, data drift, missing values.
monitoring_drift = sa.Table(
    "monitoring_drift",
    metadata,
    *_period_key(),
    sa.Column("source", sa.String(16), nullable=False),  # log | batch
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("min_rows", sa.Integer, nullable=False),
    sa.Column("enough_rows", sa.Boolean, nullable=False),
    sa.Column("prediction_drift_score", sa.Float),
    sa.Column("prediction_stattest", sa.String(64)),
    sa.Column("prediction_drift_threshold", sa.Float),
    sa.Column("prediction_drift_detected", sa.Boolean),
    sa.Column("prediction_psi", sa.Float),
    sa.Column("columns", sa.Integer),
    sa.Column("drifted_columns", sa.Integer),
    sa.Column("drifted_columns_share", sa.Float),
    sa.Column("dataset_drift_share", sa.Float),
    sa.Column("dataset_drift_detected", sa.Boolean),
    sa.Column("missing_values_share", sa.Float),
    sa.Column("report_path", sa.Text),
    sa.Column("run_label", sa.String(200), nullable=False),
    sa.UniqueConstraint("model_name", "model_version", "period", name="uq_monitoring_drift"),
)

#: One row per period, model version and feature column.
monitoring_column_drift = sa.Table(
    "monitoring_column_drift",
    metadata,
    *_period_key(),
    sa.Column("column_name", sa.String(64), nullable=False),
    sa.Column("stattest", sa.String(64), nullable=False),
    sa.Column("drift_score", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("drift_detected", sa.Boolean, nullable=False),
    sa.UniqueConstraint(
        "model_name", "model_version", "period", "column_name", name="uq_monitoring_column_drift"
    ),
)

#: Missing values of a period per model input: the marker `unknown` and empty cells.
monitoring_missing_values = sa.Table(
    "monitoring_missing_values",
    metadata,
    *_period_key(),
    sa.Column("column_name", sa.String(64), nullable=False),
    sa.Column("missing", sa.Integer, nullable=False),
    sa.Column("missing_share", sa.Float, nullable=False),  # of the period's rows
    sa.UniqueConstraint(
        "model_name", "model_version", "period", "column_name", name="uq_monitoring_missing_values"
    ),
)

#: Live performance of a period whose outcomes are known.
monitoring_performance = sa.Table(
    "monitoring_performance",
    metadata,
    *_period_key(),
    sa.Column("labelled_rows", sa.Integer, nullable=False),
    sa.Column("positives", sa.Integer, nullable=False),
    sa.Column("roc_auc", sa.Float),  # undefined when a period has one class only
    sa.Column("pr_auc", sa.Float),
    sa.Column("precision", sa.Float, nullable=False),
    sa.Column("recall", sa.Float, nullable=False),
    sa.Column("f1", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("predicted_positive_share", sa.Float, nullable=False),
    sa.UniqueConstraint("model_name", "model_version", "period", name="uq_monitoring_performance"),
)

#: Fairness of a period whose outcomes are known: one row per dimension and group.
monitoring_fairness = sa.Table(
    "monitoring_fairness",
    metadata,
    *_period_key(),
    sa.Column("dimension", sa.String(32), nullable=False),  # age band | marital | job group
    sa.Column("group_name", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("positives", sa.Integer, nullable=False),
    sa.Column("selection_rate", sa.Float, nullable=False),
    sa.Column("true_positive_rate", sa.Float),  # undefined without subscribers
    sa.Column("mean_score", sa.Float, nullable=False),
    sa.Column("observed_rate", sa.Float, nullable=False),
    sa.Column("calibration", sa.Float, nullable=False),
    sa.Column("counted", sa.Boolean, nullable=False),  # large enough to count in the gaps
    sa.UniqueConstraint(
        "model_name", "model_version", "period", "dimension", "group_name", name="uq_monitoring_fairness"
    ),
)

#: Production and challenger on the same labelled customers of a period (`compare_versions`).
CHALLENGER_SIDE_METRICS = ("roc_auc", "pr_auc", "brier", "precision", "recall", "called_share")
monitoring_challenger = sa.Table(
    "monitoring_challenger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("production_version", sa.Integer, nullable=False),
    sa.Column("challenger_version", sa.Integer, nullable=False),
    sa.Column("period", sa.String(64), nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # log | batch
    sa.Column("scored_rows", sa.Integer, nullable=False),  # rows both versions scored
    sa.Column("challenger_served_share", sa.Float),  # log: share the challenger answered for
    sa.Column("labelled_rows", sa.Integer, nullable=False),
    sa.Column("positives", sa.Integer, nullable=False),
    *(
        sa.Column(f"{side}_{name}", sa.Float)
        for side in ("production", "challenger")
        for name in CHALLENGER_SIDE_METRICS
    ),
    sa.Column("roc_auc_difference", sa.Float),  # challenger - production
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("p_value", sa.Float),  # DeLong's test
    sa.Column(
        "p_adjusted", sa.Float
    ),  # Holm over the pair's stored periods of one source; the verdict uses it
    sa.Column("pr_auc_lift", sa.Float),  # challenger PR AUC / production PR AUC - 1
    sa.Column("verdict", sa.String(64), nullable=False),
    sa.UniqueConstraint(
        "model_name", "production_version", "challenger_version", "period", name="uq_monitoring_challenger"
    ),
)

#: Call outcomes of past predictions, loaded when they become known.
prediction_outcome = sa.Table(
    "prediction_outcome",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("subscribed", sa.Boolean, nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True)),
    sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
)

#: Every alert the receiver accepted (authenticated and valid), with what it decided.
alert_event = sa.Table(
    "alert_event",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("alertname", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("annotations", sa.JSON, nullable=False),
    sa.Column("values", sa.JSON),
    sa.Column("group_key", sa.Text, nullable=False),
    # started | duplicate | cooldown | in_flight | resolved | failed
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("retraining_id", sa.Integer),
    sa.Column("detail", sa.Text, nullable=False),
)

#: One row per retraining an alert asked for; (fingerprint, starts_at) starts at most one.
retraining = sa.Table(
    "retraining",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("alertname", sa.String(200), nullable=False),
    # triggering | triggered | running | succeeded | failed | trigger_failed
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("mage_schedule_id", sa.Integer),
    sa.Column("mage_pipeline_run_id", sa.Integer),
    sa.Column("triggered_by", sa.String(200), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.UniqueConstraint("fingerprint", "starts_at", name="uq_retraining_alert"),
)


@contextmanager
def _migration_lock(engine: sa.Engine):
    """Hold one lock per database while migrating: a Postgres advisory lock or a lock file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                connection.commit()
    elif engine.url.database and engine.url.database != ":memory:":
        with open(f"{engine.url.database}.migrate.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
    else:
        yield


class SchemaOutOfDate(RuntimeError):
    """The platform database is not at the revision this code needs."""


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision of the package's migrations: the schema this code reads and writes."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def schema_revision(engine: sa.Engine) -> str | None:
    """The database's revision (None: never migrated)."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def migrate(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the database to `revision` (default: the newest) with the package's migrations;
    (the revision before, the revision after)."""
    from alembic import command

    config = _alembic_config()
    with _migration_lock(engine):
        before = schema_revision(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    return before, schema_revision(engine)


def require_current_schema(engine: sa.Engine) -> None:
    """Raise `SchemaOutOfDate`, naming the command to run, unless the database is at the head."""
    found, needed = schema_revision(engine), head_revision()
    if found != needed:
        where = engine.url.render_as_string(hide_password=True)
        state = "has no platform tables yet" if found is None else f"is at schema revision {found}"
        raise SchemaOutOfDate(
            f"the platform database {where} {state}; this code needs revision {needed}. "
            "Run `bankmarketing migrate` (or `make migrate`; `make up` and compose do it) and retry."
        )


def _write_ahead_log(dbapi_connection, _record) -> None:
    """SQLite in WAL mode: a long read (`monitor` scanning a day of the log) no longer holds
    off every writer (the predictor's log, the receiver's bookkeeping) until it ends."""
    dbapi_connection.execute("PRAGMA journal_mode=WAL")


def _new_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite files in WAL mode, their folder created."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        sa.event.listen(engine, "connect", _write_ahead_log)
    return engine


def migrate_database(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """`bankmarketing migrate`: upgrade the database at `url` to `revision` (default: the
    newest); (before, after). Its connections are closed when it returns."""
    engine = _new_engine(url)
    try:
        return migrate(engine, revision)
    finally:
        engine.dispose()


@lru_cache(maxsize=8)
def engine_for(url: str) -> sa.Engine:
    """One engine per URL, its schema checked to be the newest (`SchemaOutOfDate` otherwise)."""
    engine = _new_engine(url)
    try:
        require_current_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return engine
