"""The platform database: its tables and an engine per URL (SQLite file or Postgres)."""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa

metadata = sa.MetaData()

deployment_audit = sa.Table(
    "deployment_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # promote | refuse | rollback | keep
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("triggered_by", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(32), nullable=True),
    sa.Column("candidate_value", sa.Float, nullable=True),
    sa.Column("production_value", sa.Float, nullable=True),
    sa.Column("margin", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
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


@lru_cache(maxsize=8)
def engine_for(url: str) -> sa.Engine:
    """One engine per URL, with the platform tables created if missing."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        metadata.create_all(engine)
    except sa.exc.DatabaseError:  # another process (e.g. a gunicorn worker) created them first
        metadata.create_all(engine)
    return engine
