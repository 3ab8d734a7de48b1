"""The challenger comparison's Holm-adjusted p-value (the verdict is based on it).

Revision ID: 0008_challenger_holm
Revises: 0007_gate_evaluation_set
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_challenger_holm"
down_revision = "0007_gate_evaluation_set"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows stored before get theirs when `monitor` next stores a period of their pair.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("monitoring_challenger")}
    if "p_adjusted" not in existing:
        op.add_column("monitoring_challenger", sa.Column("p_adjusted", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("monitoring_challenger") as batch:
        batch.drop_column("p_adjusted")
