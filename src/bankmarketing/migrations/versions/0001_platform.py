"""Deployment audit, prediction log and model evaluation tables.

Databases created before migrations existed already hold these tables: they are adopted.

Revision ID: 0001_platform
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_platform"
down_revision = None
branch_labels = None
depends_on = None

_METRICS = (
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


def _missing(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _missing("deployment_audit"):
        op.create_table(
            "deployment_audit",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
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
        )
    if _missing("prediction_log"):
        op.create_table(
            "prediction_log",
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("request_id", sa.String(64), nullable=False, index=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.Integer, nullable=False),
            sa.Column("score", sa.Float, nullable=False),
            sa.Column("decision", sa.Boolean, nullable=False),
            sa.Column("features", sa.JSON, nullable=False),
        )
    if _missing("model_evaluation"):
        op.create_table(
            "model_evaluation",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("model_name", sa.String(200), nullable=False),
            sa.Column("model_version", sa.Integer, nullable=False),
            sa.Column("split", sa.String(32), nullable=False),
            sa.Column("data_version", sa.String(80), nullable=False),
            sa.Column("rows", sa.Integer, nullable=False),
            *(sa.Column(name, sa.Float, nullable=False) for name in _METRICS),
            sa.Column("mlflow_run_id", sa.String(64), nullable=True),
            sa.UniqueConstraint(
                "model_name", "model_version", "split", "data_version", name="uq_model_evaluation"
            ),
        )


def downgrade() -> None:
    for name in ("model_evaluation", "prediction_log", "deployment_audit"):
        op.drop_table(name)
