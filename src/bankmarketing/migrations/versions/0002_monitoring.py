"""Monitoring tables (one per metric family) and call outcomes for past predictions.

Revision ID: 0002_monitoring
Revises: 0001_platform
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_monitoring"
down_revision = "0001_platform"
branch_labels = None
depends_on = None


def _key() -> list[sa.Column]:
    """Every monitoring row belongs to one period and one model version."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "monitoring_drift",
        *_key(),
        sa.Column("source", sa.String(16), nullable=False),
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
    op.create_table(
        "monitoring_column_drift",
        *_key(),
        sa.Column("column_name", sa.String(64), nullable=False),
        sa.Column("stattest", sa.String(64), nullable=False),
        sa.Column("drift_score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("drift_detected", sa.Boolean, nullable=False),
        sa.UniqueConstraint(
            "model_name", "model_version", "period", "column_name", name="uq_monitoring_column_drift"
        ),
    )
    op.create_table(
        "monitoring_performance",
        *_key(),
        sa.Column("labelled_rows", sa.Integer, nullable=False),
        sa.Column("positives", sa.Integer, nullable=False),
        sa.Column("roc_auc", sa.Float),
        sa.Column("pr_auc", sa.Float),
        sa.Column("precision", sa.Float, nullable=False),
        sa.Column("recall", sa.Float, nullable=False),
        sa.Column("f1", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("predicted_positive_share", sa.Float, nullable=False),
        sa.UniqueConstraint("model_name", "model_version", "period", name="uq_monitoring_performance"),
    )
    op.create_table(
        "prediction_outcome",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("subscribed", sa.Boolean, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True)),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "prediction_outcome",
        "monitoring_performance",
        "monitoring_column_drift",
        "monitoring_drift",
    ):
        op.drop_table(name)
