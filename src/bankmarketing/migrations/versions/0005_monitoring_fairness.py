"""Monitoring: fairness by segment per period and model version.

Revision ID: 0005_monitoring_fairness
Revises: 0004_prediction_log_key
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_monitoring_fairness"
down_revision = "0004_prediction_log_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_fairness",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("positives", sa.Integer, nullable=False),
        sa.Column("selection_rate", sa.Float, nullable=False),
        sa.Column("true_positive_rate", sa.Float),
        sa.Column("mean_score", sa.Float, nullable=False),
        sa.Column("observed_rate", sa.Float, nullable=False),
        sa.Column("calibration", sa.Float, nullable=False),
        sa.Column("counted", sa.Boolean, nullable=False),
        sa.UniqueConstraint(
            "model_name", "model_version", "period", "dimension", "group_name", name="uq_monitoring_fairness"
        ),
    )


def downgrade() -> None:
    op.drop_table("monitoring_fairness")
