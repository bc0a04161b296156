"""The label store: engine setup (SQLite or PostgreSQL), migrations, and every read and write the app makes.

Concurrency: assignment must never push a pair past its overlap, so each assignment runs serialised per
project: SQLite transactions start with ``BEGIN IMMEDIATE`` (one writer at a time), PostgreSQL takes a
transaction-scoped advisory lock on the project. The unique (pair, rater) constraint is the last line of
defence against a rater seeing a pair twice.

Waits are bounded: a lock held elsewhere (another process writing to the SQLite file, a PostgreSQL lock)
is waited for ``busy_timeout_s`` at most, then the operation fails with an error ``is_busy`` recognises
(the app answers 503, nothing is written). ``open_store`` checks the database before anything else, so a
corrupt or unreadable file is one line naming it, not a traceback.

Credentials and sessions are apart: a user's token (only its SHA-256 stored) is what an admin hands
out and can revoke; logging in with it opens a server-side session whose random id is all the browser
keeps, so logging out or revoking the token ends the session on the server.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, create_engine, delete, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from postlab.errors import PostlabError
from postlab.labelapp.ingest import NewPair
from postlab.labelapp.models import (CHOICES, FLAG_KINDS, ROLES, STRENGTHS, Flag, Label, LoginSession, Member, Pair,
                                     Project, Revision, User, utcnow)
from postlab.labelapp.turns import TurnLock

DEFAULT_DB = "sqlite:///postlab_labels.db"
MAX_ID = 2**63 - 1  # row ids are signed 64-bit in SQLite and PostgreSQL; larger ones cannot exist
READ_ONLY = "postlab_read_only"
PROJECT_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_S = 5.0  # longest wait for a lock held elsewhere before a request gives up (503)
SESSION_DAYS = 14  # a login session ends after this long, or at logout, or when its token is revoked
# PostgreSQL errors that mean "busy, try again": lock_not_available (lock_timeout), deadlock, serialisation
BUSY_SQLSTATES = {"55P03", "40P01", "40001"}


class LabelAppError(PostlabError):
    """A request the store refuses; ``status`` is the HTTP code the app answers with."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(LabelAppError):
    status = 404


class Forbidden(LabelAppError):
    status = 403


class Conflict(LabelAppError):
    status = 409


class StoreUnavailable(LabelAppError):
    """The database cannot be used at all (corrupt, unreadable, locked at start)."""

    status = 503


class WritersQueueFull(PoolTimeout):
    """This process's writers queued past the busy timeout (the database is busy; nothing was written)."""


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` means the database was busy (locked elsewhere past the busy timeout, or no pooled
    connection free in time): nothing was written and the same request may succeed in a moment."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in BUSY_SQLSTATES:
        return True
    return getattr(orig, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED") or "database is locked" in str(orig)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def make_engine(url: str, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and write-locking transactions.
    Every wait for a lock or a pooled connection is bounded by ``busy_timeout_s``."""
    parsed = make_url(url)
    pool = dict(pool_size=10, max_overflow=30, pool_timeout=busy_timeout_s)
    if parsed.get_backend_name() != "sqlite":
        lock_timeout = f"-c lock_timeout={int(busy_timeout_s * 1000)}"  # row and advisory locks included
        return create_engine(parsed, pool_pre_ping=True, connect_args={"options": lock_timeout}, **pool)
    if parsed.database in (None, "", ":memory:"):
        raise LabelAppError(f"--db {url}: use a SQLite file (sqlite:///path.db); an in-memory database is not shared")
    engine = create_engine(parsed, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}, **pool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's BEGIN below open transactions
        cur = dbapi_conn.cursor()
        for pragma in (f"busy_timeout={int(busy_timeout_s * 1000)}", "journal_mode=WAL", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        # Writers take the write lock up front (no lock upgrades, so no deadlocks); readers don't wait for it.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def open_store(url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> Store:
    """The store at ``url``, checked (SQLite: ``PRAGMA quick_check``) and migrated to the latest revision.
    A database that cannot be used raises StoreUnavailable with one line naming it."""
    store = Store(url, busy_timeout_s=busy_timeout_s)
    where = store.engine.url.database if store.engine.dialect.name == "sqlite" else \
        store.engine.url.render_as_string(hide_password=True)
    try:
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:
                problems = [row[0] for row in conn.exec_driver_sql("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                found = " ".join("; ".join(problems).split())  # quick_check's lines, as one
                raise StoreUnavailable(f"{where}: the database file is corrupt ({found}); "
                                       f"restore it from a backup or use another --db")
        migrate(store.engine)
    except SQLAlchemyError as e:
        store.close()
        raise StoreUnavailable(_why_unusable(where, e, busy_timeout_s)) from None
    except StoreUnavailable:
        store.close()
        raise
    return store


def _why_unusable(where: str, e: SQLAlchemyError, busy_timeout_s: float) -> str:
    detail = " ".join(str(getattr(e, "orig", None) or e).split())  # one line, whatever the driver says
    if is_busy(e):
        return f"{where}: the database is locked by another process (waited {busy_timeout_s:g} s: {detail}); try again"
    if isinstance(e, DBAPIError) and not isinstance(e, OperationalError) and "sqlite" in type(e.orig).__module__:
        return f"{where}: the database file is corrupt or not a SQLite database ({detail}); " \
               f"restore it from a backup or use another --db"
    return f"{where}: cannot open the database ({detail})"


def alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; migrations only add, so labels survive every upgrade."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass
class LabelInput:
    """One answer, in the terms the rater saw: ``choice`` a = left, b = right."""

    choice: str
    strength: str | None = None
    edit: str | None = None
    flags: dict[str, list[str]] = field(default_factory=dict)  # "a"/"b" (as shown) -> flag kinds

    def validate(self) -> None:
        if self.choice not in CHOICES:
            raise LabelAppError(f"choice: must be one of {', '.join(CHOICES)} (got {self.choice!r})", "choice")
        if self.choice != "tie" and self.strength not in STRENGTHS:
            raise LabelAppError(f"strength: must be one of {', '.join(STRENGTHS)} (got {self.strength!r})", "strength")
        for side, kinds in self.flags.items():
            if side not in ("a", "b"):
                raise LabelAppError(f"flags: side must be a or b (got {side!r})", "flags")
            bad = [k for k in kinds if k not in FLAG_KINDS]
            if bad:
                raise LabelAppError(f"flags.{side}: unknown flag {bad[0]!r} (expected {', '.join(FLAG_KINDS)})", "flags")
        if self.edit is not None and self.edit.strip() and self.choice == "tie":
            raise LabelAppError("edit: a tie has no better response to edit", "edit")
        if self.edit is not None and len(self.edit) > 100_000:
            raise LabelAppError("edit: longer than 100000 characters", "edit")
        if self.edit is not None:
            try:
                self.edit.encode("utf-8")
            except UnicodeEncodeError as e:
                raise LabelAppError(f"edit: not valid text: character {e.start} is a lone surrogate "
                                    f"({self.edit[e.start]!r})", "edit") from None


def _flip(side: str, swapped: bool) -> str:
    return {"a": "b", "b": "a"}.get(side, side) if swapped else side


def _as_utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


class Store:
    def __init__(self, url: str = DEFAULT_DB, *, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.engine = make_engine(url, busy_timeout_s)
        # the largest row id this database can hold: INTEGER columns are 32-bit in PostgreSQL, 64-bit in SQLite
        self.max_id = 2**31 - 1 if self.engine.dialect.name == "postgresql" else MAX_ID
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite: this process's writers take turns in arrival order before meeting the file's lock
        self._turns = TurnLock() if self.engine.dialect.name == "sqlite" else None
        self._read_sessions = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        if self._turns is None:
            with self._sessions.begin() as s:
                yield s
            return
        if not self._turns.acquire(self.busy_timeout_s):
            raise WritersQueueFull(f"no turn to write within {self.busy_timeout_s:g} s: the database is busy")
        try:
            with self._sessions.begin() as s:
                yield s
        finally:
            self._turns.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction that only reads (on SQLite it does not queue behind writers)."""
        with self._read_sessions.begin() as s:
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # --- users and projects (admin) ---

    def add_user(self, name: str, role: str) -> str:
        """Create a user and return their token (shown once; only its hash is stored)."""
        if role not in ROLES:
            raise LabelAppError(f"role: must be admin or rater (got {role!r})", "role")
        if not name.strip() or len(name) > 100:
            raise LabelAppError("name: must be 1-100 characters", "name")
        token = secrets.token_urlsafe(24)
        try:
            with self.tx() as s:
                s.add(User(name=name, role=role, token_hash=hash_token(token)))
        except IntegrityError:
            raise Conflict(f"user {name!r} already exists", "name") from None
        return token

    def user_by_token(self, token: str) -> User | None:
        """The user a token belongs to, unless it was revoked."""
        with self.read() as s:
            return s.scalar(select(User).where(User.token_hash == hash_token(token), User.revoked_at.is_(None)))

    def revoke_token(self, name: str) -> int:
        """The user's token stops working and their sessions end (labels stay); returns how many sessions ended."""
        with self.tx() as s:
            user = self._user(s, name)
            user.revoked_at = utcnow()
            return s.execute(delete(LoginSession).where(LoginSession.user_id == user.id)).rowcount

    def new_token(self, name: str) -> str:
        """Give an existing user a new token (shown once): the old one stops working and their sessions end."""
        token = secrets.token_urlsafe(24)
        with self.tx() as s:
            user = self._user(s, name)
            user.token_hash, user.revoked_at = hash_token(token), None
            s.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        return token

    # --- login sessions: the browser holds a session id, never the token ---

    def open_session(self, token: str) -> str | None:
        """Log in with ``token``: a new session for its user, whose id (the cookie value) is returned once;
        None for an unknown or revoked token. The user's expired sessions are cleared on the way."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        with self.tx() as s:
            user = s.scalar(select(User).where(User.token_hash == hash_token(token), User.revoked_at.is_(None)))
            if user is None:
                return None
            s.execute(delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.expires_at < now))
            s.add(LoginSession(user_id=user.id, id_hash=hash_token(session_id), created_at=now,
                               expires_at=now + timedelta(days=SESSION_DAYS)))
        return session_id

    def user_by_session(self, session_id: str) -> User | None:
        """The user of a live session (not logged out, not expired, token not revoked)."""
        with self.read() as s:
            row = s.execute(select(User, LoginSession.expires_at).join(LoginSession, LoginSession.user_id == User.id)
                            .where(LoginSession.id_hash == hash_token(session_id), User.revoked_at.is_(None))).first()
        if row is None or _as_utc(row[1]) <= utcnow():
            return None
        return row[0]

    def close_session(self, session_id: str) -> None:
        """Log out: the session id stops working wherever it was copied to."""
        with self.tx() as s:
            s.execute(delete(LoginSession).where(LoginSession.id_hash == hash_token(session_id)))

    def project(self, s: Session, name: str) -> Project:
        p = s.scalar(select(Project).where(Project.name == name))
        if p is None:
            raise NotFound(f"project {name!r} not found", "project")
        return p

    def _user(self, s: Session, name: str) -> User:
        u = s.scalar(select(User).where(User.name == name))
        if u is None:
            raise NotFound(f"user {name!r} not found", "name")
        return u

    def create_project(self, name: str, pairs: list[NewPair], *, overlap: int = 1, gold_every: int = 5,
                       instructions: str = "") -> int:
        if not PROJECT_NAME.fullmatch(name):
            raise LabelAppError(f"name: {name!r} must be 1-100 letters, digits, '.', '_' or '-'", "name")
        if overlap < 1 or gold_every < 1:
            raise LabelAppError("overlap and gold_every must be at least 1", "overlap")
        try:
            with self.tx() as s:
                p = Project(name=name, overlap=overlap, gold_every=gold_every, instructions=instructions)
                s.add(p)
                s.flush()
                s.add_all(self._pair_rows(p.id, pairs))
        except IntegrityError:
            raise Conflict(f"project {name!r} already exists", "name") from None
        return len(pairs)

    @staticmethod
    def _pair_rows(project_id: int, pairs: list[NewPair]) -> list[Pair]:
        rows = []
        for p in pairs:
            a, b, gold = p.response_a, p.response_b, p.gold_choice
            if gold in ("a", "b") and secrets.randbelow(2):
                # Gold files put the right answer first; stored that way, a side would give it away. The
                # sample numbers stay as they are: for gold questions they only tell repeats apart.
                a, b, gold = b, a, _flip(gold, True)
            rows.append(Pair(project_id=project_id, prompt_id=p.prompt_id, response_a=a, response_b=b,
                             prompt_json=json.dumps(p.prompt, ensure_ascii=False), sample_a=p.sample_a,
                             sample_b=p.sample_b, gold_choice=gold))
        return rows

    def add_gold(self, project: str, pairs: list[NewPair]) -> int:
        try:
            with self.tx() as s:
                s.add_all(self._pair_rows(self.project(s, project).id, pairs))
        except IntegrityError:
            raise Conflict(f"project {project!r}: some of these gold questions were added before") from None
        return len(pairs)

    def add_member(self, project: str, user: str) -> None:
        with self.tx() as s:
            p, u = self.project(s, project), self._user(s, user)
            if s.get(Member, (p.id, u.id)) is None:
                s.add(Member(project_id=p.id, user_id=u.id))

    def remove_member(self, project: str, user: str) -> int:
        """Take a user out of a project. Their submitted answers stay (exports, quality); their open
        assignments there are discarded, so the pairs go to other raters. Returns how many were discarded."""
        with self.tx() as s:
            p, u = self.project(s, project), self._user(s, user)
            self._lock_project(s, p.id)  # no assignment is handed to them while they are being removed
            member = s.get(Member, (p.id, u.id))
            if member is None:
                raise NotFound(f"{user!r} is not a member of project {project!r}", "name")
            drafts = s.scalars(select(Label).join(Pair, Pair.id == Label.pair_id).where(
                Pair.project_id == p.id, Label.user_id == u.id, Label.status == "draft")).all()
            for label in drafts:
                label.status = "discarded"
            s.delete(member)
            return len(drafts)

    def set_overlap(self, project: str, overlap: int) -> None:
        if overlap < 1:
            raise LabelAppError("overlap: must be at least 1", "overlap")
        with self.tx() as s:
            self.project(s, project).overlap = overlap

    def release_drafts(self, project: str, older_than_minutes: float) -> int:
        """Discard assignments left unanswered that long, so their pairs can reach other raters."""
        cutoff = utcnow() - timedelta(minutes=older_than_minutes)
        with self.tx() as s:
            p = self.project(s, project)
            self._lock_project(s, p.id)
            stale = s.scalars(select(Label).join(Pair, Pair.id == Label.pair_id).where(
                Pair.project_id == p.id, Label.status == "draft")).all()
            stale = [label for label in stale if _as_utc(label.created_at) <= cutoff]
            for label in stale:
                label.status = "discarded"
            return len(stale)

    def projects_for(self, user: User) -> list[Project]:
        with self.read() as s:
            q = select(Project).order_by(Project.name)
            if user.role != "admin":
                q = q.join(Member, Member.project_id == Project.id).where(Member.user_id == user.id)
            return list(s.scalars(q))

    def _member_project(self, s: Session, name: str, user: User) -> Project:
        p = self.project(s, name)
        if user.role != "admin" and s.get(Member, (p.id, user.id)) is None:
            raise NotFound(f"project {name!r} not found", "project")  # non-members cannot tell it exists
        return p

    # --- rating ---

    def _lock_project(self, s: Session, project_id: int) -> None:
        if self.is_postgres:
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7_100_000 + project_id})

    def rates_in(self, project: str, user: User) -> bool:
        """Whether ``user`` is given pairs in ``project``: members are; admins see every project but rate
        only where they were added as members. Outsiders get NotFound."""
        with self.read() as s:
            p = self._member_project(s, project, user)
            return self._is_member(s, p.id, user.id)

    @staticmethod
    def _is_member(s: Session, project_id: int, user_id: int) -> bool:
        """Read from the database, not the session's identity map: a membership may end mid-transaction."""
        return s.scalar(select(Member.user_id).where(Member.project_id == project_id, Member.user_id == user_id)) \
            is not None

    def next_label(self, project: str, user: User) -> tuple[Label, Pair] | None:
        """The rater's open assignment, or a new one; None when nothing is left for them."""
        with self.tx() as s:
            p = self._member_project(s, project, user)
            self._lock_project(s, p.id)
            if not self._is_member(s, p.id, user.id):
                if user.role != "admin":  # removed while waiting for the lock
                    raise NotFound(f"project {project!r} not found", "project")
                # an admin: looking must not take a pair from the raters
                raise Forbidden(f"admins are given pairs only in projects they are members of; to rate in "
                                f"{project!r}, add yourself with `postlab label-app admin add-member`", "project")
            draft = s.execute(select(Label, Pair).join(Pair, Pair.id == Label.pair_id).where(
                Pair.project_id == p.id, Label.user_id == user.id, Label.status == "draft").order_by(Label.id)).first()
            if draft is not None:
                return draft[0], draft[1]
            pair = self._pick_pair(s, p, user)
            if pair is None:
                return None
            label = Label(pair_id=pair.id, user_id=user.id, status="draft", swapped=secrets.randbelow(2) == 1)
            s.add(label)
            s.flush()
            return label, pair

    def _pick_pair(self, s: Session, p: Project, user: User) -> Pair | None:
        """A gold question with probability 1/gold_every (drawn, not every Nth, so its position does not
        give it away), else the next pair that still needs votes; once none does, gold questions up to the
        rater's share (one in gold_every of their assignments)."""
        seen = select(Label.pair_id).where(Label.user_id == user.id)
        mine = select(func.count()).select_from(Label).join(Pair, Pair.id == Label.pair_id).where(
            Pair.project_id == p.id, Label.user_id == user.id)
        unseen_gold = select(Pair).where(Pair.project_id == p.id, Pair.gold_choice.is_not(None),
                                         Pair.id.not_in(seen)).order_by(Pair.id).limit(1)
        if secrets.randbelow(p.gold_every) == 0 and (gold := s.scalar(unseen_gold)) is not None:
            return gold
        active = (select(Label.pair_id, func.count().label("n")).where(Label.status != "discarded")
                  .group_by(Label.pair_id).subquery())
        n_active = func.coalesce(active.c.n, 0)
        # Finish pairs that others started first, so complete pairs (and agreement) accumulate early.
        pair = s.scalar(select(Pair).outerjoin(active, active.c.pair_id == Pair.id).where(
            Pair.project_id == p.id, Pair.gold_choice.is_(None), Pair.id.not_in(seen), n_active < p.overlap)
            .order_by(n_active.desc(), Pair.id).limit(1))
        if pair is None:
            n_gold = s.scalar(mine.where(Pair.gold_choice.is_not(None)))
            if n_gold < (s.scalar(mine) + 1) // p.gold_every:
                return s.scalar(unseen_gold)
        return pair

    def _own_label(self, s: Session, label_id: int, user: User, *, lock: bool = False) -> Label:
        label = s.get(Label, label_id, with_for_update=lock) if 0 < label_id <= self.max_id else None
        if label is None or label.user_id != user.id:
            raise NotFound(f"label {label_id} not found", "label_id")  # others' labels are invisible, not forbidden
        return label

    def submit(self, label_id: int, user: User, answer: LabelInput) -> Label:
        answer.validate()
        with self.tx() as s:
            label = self._open_label(s, label_id, user)
            pair = s.get(Pair, label.pair_id)
            label.choice = _flip(answer.choice, label.swapped)
            label.strength = None if answer.choice == "tie" else answer.strength
            self._finish(label, "submitted")
            edited = (answer.edit or "").strip()
            original = pair.response_a if label.choice == "a" else pair.response_b
            if edited and edited != original.strip():
                s.add(Revision(label_id=label.id, side=label.choice, text=answer.edit.strip()))
            for side, kinds in answer.flags.items():
                for kind in sorted(set(kinds)):
                    s.add(Flag(label_id=label.id, side=_flip(side, label.swapped), kind=kind))
            return label

    def skip(self, label_id: int, user: User) -> Label:
        with self.tx() as s:
            label = self._open_label(s, label_id, user)
            self._finish(label, "discarded")
            return label

    def _open_label(self, s: Session, label_id: int, user: User) -> Label:
        label = self._own_label(s, label_id, user, lock=True)
        project_id = s.scalar(select(Pair.project_id).where(Pair.id == label.pair_id))
        if not self._is_member(s, project_id, user.id):  # removed from the project: its labels are out of reach
            raise NotFound(f"label {label_id} not found", "label_id")
        if label.status != "draft":
            raise Conflict(f"label {label_id} was already {label.status}", "label_id")
        return label

    @staticmethod
    def _finish(label: Label, status: str) -> None:
        now = utcnow()
        label.status, label.submitted_at = status, now
        label.duration_ms = int((now - _as_utc(label.created_at)).total_seconds() * 1000)

    def label_view(self, label_id: int, user: User) -> dict:
        with self.read() as s:
            label = self._own_label(s, label_id, user)
            return self._view(s, label, s.get(Pair, label.pair_id), user.name)

    def labels(self, project: str, user: User, rater: str | None = None) -> list[dict]:
        """Raters get their own labels; admins anyone's (``rater`` filters)."""
        with self.read() as s:
            p = self._member_project(s, project, user)
            q = (select(Label, Pair, User.name).join(Pair, Pair.id == Label.pair_id).join(User, User.id == Label.user_id)
                 .where(Pair.project_id == p.id).order_by(Label.id))
            if user.role != "admin":
                if rater not in (None, user.name):
                    raise Forbidden("rater: only admins can see other raters' labels", "rater")
                q = q.where(Label.user_id == user.id)
            elif rater is not None:
                q = q.where(User.name == rater)
            return [self._view(s, label, pair, name) for label, pair, name in s.execute(q)]

    @staticmethod
    def _view(s: Session, label: Label, pair: Pair, rater: str) -> dict:
        """A label as its rater (or an admin) may see it. While it is an open assignment (draft) nothing
        about the pair beyond what the rating page shows is revealed: not whether it is a gold question,
        which side is which, nor the pair and prompt ids (gold questions are numbered apart)."""
        edits = s.scalars(select(Revision.text).where(Revision.label_id == label.id).order_by(Revision.id)).all()
        flags = s.execute(select(Flag.side, Flag.kind).where(Flag.label_id == label.id).order_by(Flag.id)).all()
        view = {"label_id": label.id, "pair_id": pair.id, "prompt_id": pair.prompt_id, "rater": rater,
                "status": label.status, "swapped": label.swapped, "choice": label.choice, "strength": label.strength,
                "gold": pair.gold_choice is not None, "edits": list(edits),
                "flags": [{"side": side, "kind": kind} for side, kind in flags]}
        if label.status == "draft":
            view.update(pair_id=None, prompt_id=None, swapped=None, gold=None)
        return view

    def progress(self, project: str, user: User) -> dict:
        with self.read() as s:
            p = self._member_project(s, project, user)
            rows = s.execute(select(Label.status, func.count()).join(Pair, Pair.id == Label.pair_id).where(
                Pair.project_id == p.id, Label.user_id == user.id).group_by(Label.status)).all()
            counts = dict(rows)
            n_pairs = s.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == p.id,
                                                                              Pair.gold_choice.is_(None)))
            return {"submitted": counts.get("submitted", 0), "skipped": counts.get("discarded", 0),
                    "pairs": n_pairs, "overlap": p.overlap}

    # --- admin reads: export and quality live in export.py; they read through this ---

    def submitted(self, project: str) -> list[tuple[Label, Pair, str]]:
        with self.read() as s:
            p = self.project(s, project)
            q = (select(Label, Pair, User.name).join(Pair, Pair.id == Label.pair_id).join(User, User.id == Label.user_id)
                 .where(Pair.project_id == p.id, Label.status == "submitted").order_by(Pair.id, Label.id))
            return [(label, pair, name) for label, pair, name in s.execute(q)]

    def revisions_and_flags(self, project: str) -> tuple[list[Revision], list[Flag]]:
        with self.read() as s:
            p = self.project(s, project)
            in_project = select(Label.id).join(Pair, Pair.id == Label.pair_id).where(Pair.project_id == p.id)
            revs = s.scalars(select(Revision).where(Revision.label_id.in_(in_project)).order_by(Revision.id)).all()
            flags = s.scalars(select(Flag).where(Flag.label_id.in_(in_project)).order_by(Flag.id)).all()
            return list(revs), list(flags)

    def project_summary(self, project: str) -> dict:
        with self.read() as s:
            p = self.project(s, project)
            n_pairs = s.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == p.id,
                                                                              Pair.gold_choice.is_(None)))
            n_gold = s.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == p.id,
                                                                             Pair.gold_choice.is_not(None)))
            raters = s.scalars(select(User.name).join(Member, Member.user_id == User.id)
                               .where(Member.project_id == p.id).order_by(User.name)).all()
            return {"name": p.name, "overlap": p.overlap, "gold_every": p.gold_every, "pairs": n_pairs,
                    "gold_questions": n_gold, "raters": list(raters), "instructions": p.instructions}
