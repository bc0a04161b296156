"""Server-side login sessions (the cookie carries a session id, not the token); revocable tokens.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("revoked_at", TZ, nullable=True))
    op.create_table("sessions",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("id_hash", sa.String(64), nullable=False, unique=True),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("expires_at", TZ, nullable=False))


def downgrade() -> None:
    op.drop_table("sessions")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("revoked_at")
