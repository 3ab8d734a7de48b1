"""The gate's evaluation set in the audit: which rows it judged on, how many, how many subscribers.

Revision ID: 0007_gate_evaluation_set
Revises: 0006_challenger
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_gate_evaluation_set"
down_revision = "0006_challenger"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("evaluation_set", sa.Text),
    ("evaluation_rows", sa.Integer),
    ("evaluation_subscribers", sa.Integer),
)


def upgrade() -> None:
    # Nullable columns: added in place; rows audited before have none.
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("deployment_audit")}
    for name, kind in _COLUMNS:
        if name not in existing:
            op.add_column("deployment_audit", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_audit") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
