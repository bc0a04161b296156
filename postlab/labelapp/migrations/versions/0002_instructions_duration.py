"""Project instructions shown to raters; time a rater spent on each label.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("instructions", sa.Text, nullable=False, server_default=""))
    with op.batch_alter_table("labels") as batch:
        batch.add_column(sa.Column("duration_ms", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.drop_column("duration_ms")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("instructions")
