"""Initial label store: users, projects, members, pairs, labels, revisions, flags.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("users",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False, unique=True),
                    sa.Column("role", sa.String(10), nullable=False),
                    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_table("projects",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False, unique=True),
                    sa.Column("overlap", sa.Integer, nullable=False),
                    sa.Column("gold_every", sa.Integer, nullable=False),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_table("members",
                    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True))
    op.create_table("pairs",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("prompt_id", sa.String(200), nullable=False),
                    sa.Column("prompt_json", sa.Text, nullable=False),
                    sa.Column("response_a", sa.Text, nullable=False),
                    sa.Column("response_b", sa.Text, nullable=False),
                    sa.Column("sample_a", sa.Integer, nullable=False),
                    sa.Column("sample_b", sa.Integer, nullable=False),
                    sa.Column("gold_choice", sa.String(3), nullable=True),
                    sa.UniqueConstraint("project_id", "prompt_id", "sample_a", "sample_b", name="uq_pair"))
    op.create_table("labels",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("pair_id", sa.Integer, sa.ForeignKey("pairs.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("status", sa.String(10), nullable=False),
                    sa.Column("swapped", sa.Boolean, nullable=False),
                    sa.Column("choice", sa.String(3), nullable=True),
                    sa.Column("strength", sa.String(20), nullable=True),
                    sa.Column("created_at", TZ, nullable=False),
                    sa.Column("submitted_at", TZ, nullable=True),
                    sa.UniqueConstraint("pair_id", "user_id", name="uq_label_pair_user"))
    op.create_table("revisions",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("label_id", sa.Integer, sa.ForeignKey("labels.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("side", sa.String(1), nullable=False),
                    sa.Column("text", sa.Text, nullable=False),
                    sa.Column("created_at", TZ, nullable=False))
    op.create_table("flags",
                    sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("label_id", sa.Integer, sa.ForeignKey("labels.id", ondelete="CASCADE"), nullable=False, index=True),
                    sa.Column("side", sa.String(1), nullable=False),
                    sa.Column("kind", sa.String(10), nullable=False),
                    sa.UniqueConstraint("label_id", "side", "kind", name="uq_flag"))


def downgrade() -> None:
    for table in ("flags", "revisions", "labels", "pairs", "members", "projects", "users"):
        op.drop_table(table)
