"""Tables of the label store (SQLAlchemy 2 ORM). Schema changes go through a migration in migrations/versions.

A pair's two responses are stored in a canonical order (``response_a``, ``response_b``); each label
records whether its rater saw them swapped, and stores its choice, revisions and flags in canonical terms.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "rater")
CHOICES = ("a", "b", "tie")
STRENGTHS = ("slightly better", "better", "much better")  # the keys `postlab rm margin=strength` knows
FLAG_KINDS = ("unsafe", "factual", "language")  # unsafe, factually wrong, wrong language
STATUSES = ("draft", "submitted", "discarded")  # draft = assigned, not answered yet; discarded = skipped


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token; the token is never stored
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # revision 0003


class LoginSession(Base):
    """A browser session opened by logging in: the cookie carries its id, never the user's token, so
    logging out (or revoking the token) ends it on the server."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the session id the cookie holds
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    overlap: Mapped[int] = mapped_column(Integer, default=1)  # distinct raters each pair should reach
    gold_every: Mapped[int] = mapped_column(Integer, default=5)  # one gold question in every N assignments
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    instructions: Mapped[str] = mapped_column(Text, default="")  # added in revision 0002


class Member(Base):
    __tablename__ = "members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Pair(Base):
    __tablename__ = "pairs"
    __table_args__ = (UniqueConstraint("project_id", "prompt_id", "sample_a", "sample_b", name="uq_pair"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prompt_id: Mapped[str] = mapped_column(String(200))
    prompt_json: Mapped[str] = mapped_column(Text)  # the conversation being answered, JSON messages
    response_a: Mapped[str] = mapped_column(Text)
    response_b: Mapped[str] = mapped_column(Text)
    sample_a: Mapped[int] = mapped_column(Integer)  # candidates' sample_index (gold pairs: row number, -1/-2)
    sample_b: Mapped[int] = mapped_column(Integer)
    gold_choice: Mapped[str | None] = mapped_column(String(3), nullable=True)  # set on gold questions only


class Label(Base):
    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("pair_id", "user_id", name="uq_label_pair_user"),)  # no rater sees a pair twice
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="draft")
    swapped: Mapped[bool] = mapped_column(Boolean)  # True: the rater saw response_b on the left
    choice: Mapped[str | None] = mapped_column(String(3), nullable=True)  # canonical: a | b | tie
    strength: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # added in revision 0002


class Revision(Base):
    __tablename__ = "revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(1))  # canonical side that was edited
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Flag(Base):
    __tablename__ = "flags"
    __table_args__ = (UniqueConstraint("label_id", "side", "kind", name="uq_flag"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), index=True)
    side: Mapped[str] = mapped_column(String(1))  # canonical side flagged
    kind: Mapped[str] = mapped_column(String(10))
