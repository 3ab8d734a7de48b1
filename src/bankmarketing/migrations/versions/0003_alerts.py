"""Alert receiver: every received alert and the retrainings alerts started.

Revision ID: 0003_alerts
Revises: 0002_monitoring
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_alerts"
down_revision = "0002_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_event",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("values", sa.JSON),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("retraining_id", sa.Integer),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "retraining",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
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


def downgrade() -> None:
    op.drop_table("retraining")
    op.drop_table("alert_event")
