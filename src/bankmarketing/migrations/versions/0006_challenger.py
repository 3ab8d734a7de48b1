"""Challenger: the other version's score in the prediction log, and the live comparison table.

Revision ID: 0006_challenger
Revises: 0005_monitoring_fairness
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_challenger"
down_revision = "0005_monitoring_fairness"
branch_labels = None
depends_on = None

_SIDES = ("production", "challenger")
_METRICS = ("roc_auc", "pr_auc", "brier", "precision", "recall", "called_share")


def upgrade() -> None:
    # Nullable columns: added in place (no table copy); rows logged before have none.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("prediction_log")}
    for column in (
        sa.Column("arm", sa.String(16), nullable=True),
        sa.Column("shadow_version", sa.Integer, nullable=True),
        sa.Column("shadow_score", sa.Float, nullable=True),
    ):
        if column.name not in existing:
            op.add_column("prediction_log", column)
    op.create_table(
        "monitoring_challenger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("production_version", sa.Integer, nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("scored_rows", sa.Integer, nullable=False),
        sa.Column("challenger_served_share", sa.Float),
        sa.Column("labelled_rows", sa.Integer, nullable=False),
        sa.Column("positives", sa.Integer, nullable=False),
        *(sa.Column(f"{side}_{name}", sa.Float) for side in _SIDES for name in _METRICS),
        sa.Column("roc_auc_difference", sa.Float),
        sa.Column("ci_low", sa.Float),
        sa.Column("ci_high", sa.Float),
        sa.Column("p_value", sa.Float),
        sa.Column("pr_auc_lift", sa.Float),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.UniqueConstraint(
            "model_name",
            "production_version",
            "challenger_version",
            "period",
            name="uq_monitoring_challenger",
        ),
    )


def downgrade() -> None:
    op.drop_table("monitoring_challenger")
    with op.batch_alter_table("prediction_log") as batch:
        for name in ("shadow_score", "shadow_version", "arm"):
            batch.drop_column(name)
