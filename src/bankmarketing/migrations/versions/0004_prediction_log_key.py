"""Prediction log: a unique writer key per row, so replaying spilled rows never duplicates.

Revision ID: 0004_prediction_log_key
Revises: 0003_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_prediction_log_key"
down_revision = "0003_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column and an index: added in place on SQLite and Postgres (no table copy);
    # rows written before have no key (NULLs never conflict). A table made before migrations
    # from the current declaration already has both: it is adopted.
    inspector = sa.inspect(op.get_bind())
    if "log_key" not in {c["name"] for c in inspector.get_columns("prediction_log")}:
        op.add_column("prediction_log", sa.Column("log_key", sa.String(40), nullable=True))
    if "uq_prediction_log_key" not in {i["name"] for i in inspector.get_indexes("prediction_log")}:
        op.create_index("uq_prediction_log_key", "prediction_log", ["log_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_prediction_log_key", table_name="prediction_log")
    with op.batch_alter_table("prediction_log") as batch:
        batch.drop_column("log_key")
