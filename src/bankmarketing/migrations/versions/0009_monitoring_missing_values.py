"""Monitoring: missing values per period, model version and input column (`unknown` counted).

Revision ID: 0009_monitoring_missing_values
Revises: 0008_challenger_holm
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_monitoring_missing_values"
down_revision = "0008_challenger_holm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_missing_values",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("column_name", sa.String(64), nullable=False),
        sa.Column("missing", sa.Integer, nullable=False),
        sa.Column("missing_share", sa.Float, nullable=False),
        sa.UniqueConstraint(
            "model_name", "model_version", "period", "column_name", name="uq_monitoring_missing_values"
        ),
    )


def downgrade() -> None:
    op.drop_table("monitoring_missing_values")
