"""``postlab label-app``: serve the labeling app, and the admin commands (projects, raters, gold, export).

Only Typer is imported here; the store and the web app load inside each command.
"""

from __future__ import annotations

import os
from typing import Optional

import typer

label_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                        help="The labeling web app: human comparisons, edits and flags.")
admin_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                        help="Create projects and raters, add gold questions, export labels.")
label_app.add_typer(admin_app, name="admin")

DB_HELP = "database URL: sqlite:///file.db (default: $POSTLAB_LABEL_DB or sqlite:///postlab_labels.db) or postgresql+psycopg://..."
DB_OPT = typer.Option(None, "--db", help=DB_HELP)


def _store(db: Optional[str], busy_timeout_s: Optional[float] = None):
    """The store, checked and migrated; a corrupt, unreadable or locked database is a one-line error."""
    from postlab.labelapp.store import BUSY_TIMEOUT_S, DEFAULT_DB, open_store

    return open_store(db or os.environ.get("POSTLAB_LABEL_DB", DEFAULT_DB), busy_timeout_s=busy_timeout_s or BUSY_TIMEOUT_S)


@label_app.command("serve", help="Serve the app (checks and migrates the database first).")
def serve(db: Optional[str] = DB_OPT, host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8765, "--port"),
          busy_timeout: float = typer.Option(5.0, "--busy-timeout", min=0.1,
                                             help="seconds a request waits for a database lock held elsewhere "
                                                  "before answering 503 with Retry-After")) -> None:
    import uvicorn

    from postlab.labelapp.app import create_app

    store = _store(db, busy_timeout)
    print(f"label-app on http://{host}:{port}/login  (store: {store.engine.url.render_as_string(hide_password=True)})",
          flush=True)
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")


@admin_app.command("migrate", help="Upgrade the database schema to the latest revision (labels are kept).")
def migrate_cmd(db: Optional[str] = DB_OPT) -> None:
    from postlab.labelapp.store import current_revision

    print(f"schema at revision {current_revision(_store(db).engine)}")


@admin_app.command("create-project", help="Create a project from a candidates JSONL (the output of `postlab sample`).")
def create_project(name: str = typer.Argument(..., help="project name (letters, digits, . _ -)"),
                   candidates: str = typer.Option(..., "--candidates", help="candidates JSONL from `postlab sample`"),
                   overlap: int = typer.Option(1, "--overlap", help="distinct raters per pair"),
                   max_pairs_per_prompt: int = typer.Option(6, "--max-pairs-per-prompt", help="pairs drawn per prompt"),
                   gold_every: int = typer.Option(5, "--gold-every", help="one gold question in every N assignments"),
                   instructions: str = typer.Option("", "--instructions", help="shown to raters above each prompt"),
                   seed: int = typer.Option(0, "--seed", help="seed of the pair choice"),
                   db: Optional[str] = DB_OPT) -> None:
    from postlab.labelapp.ingest import read_candidate_pairs

    pairs = read_candidate_pairs(candidates, max_pairs_per_prompt=max_pairs_per_prompt, seed=seed)
    n = _store(db).create_project(name, pairs, overlap=overlap, gold_every=gold_every, instructions=instructions)
    print(f"project {name}: {n} pairs from {len({p.prompt_id for p in pairs})} prompts, overlap {overlap}")


@admin_app.command("add-rater", help="Create a rater (prints their token once) and add them to projects.")
def add_rater(name: str = typer.Argument(...),
              project: Optional[list[str]] = typer.Option(None, "--project", help="project to join (repeatable)"),
              db: Optional[str] = DB_OPT) -> None:
    store = _store(db)
    token = store.add_user(name, "rater")
    for p in project or []:
        store.add_member(p, name)
    print(f"rater {name} token: {token}")


@admin_app.command("add-admin", help="Create an admin (prints the token once).")
def add_admin(name: str = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    print(f"admin {name} token: {_store(db).add_user(name, 'admin')}")


@admin_app.command("add-member", help="Add an existing rater to a project.")
def add_member(project: str = typer.Argument(...), name: str = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    _store(db).add_member(project, name)
    print(f"{name} joined {project}")


@admin_app.command("remove-member", help="Take a user out of a project: their answers stay, their open assignments "
                                            "there go back to the other raters.")
def remove_member(project: str = typer.Argument(...), name: str = typer.Argument(...),
                  db: Optional[str] = DB_OPT) -> None:
    released = _store(db).remove_member(project, name)
    print(f"{name} left {project}; released {released} open assignment{'s' * (released != 1)}")


@admin_app.command("revoke-token", help="Revoke a user's token: it stops working and their login sessions end "
                                           "(their labels stay; `new-token` gives them access again).")
def revoke_token(name: str = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    ended = _store(db).revoke_token(name)
    print(f"{name}: token revoked, {ended} session{'s' * (ended != 1)} ended")


@admin_app.command("new-token", help="Give an existing user a new token (printed once); the old one stops working "
                                        "and their login sessions end.")
def new_token(name: str = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    print(f"{name} new token: {_store(db).new_token(name)}")


@admin_app.command("set-overlap", help="Set how many distinct raters each pair should reach.")
def set_overlap(project: str = typer.Argument(...), overlap: int = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    _store(db).set_overlap(project, overlap)
    print(f"{project}: overlap {overlap}")


@admin_app.command("release-drafts", help="Discard assignments left unanswered for N minutes (their pairs go to other raters).")
def release_drafts(project: str = typer.Argument(...),
                   older_than_minutes: float = typer.Option(60.0, "--older-than-minutes"),
                   db: Optional[str] = DB_OPT) -> None:
    print(f"{project}: released {_store(db).release_drafts(project, older_than_minutes)} unanswered assignments")


@admin_app.command("add-gold", help="Add gold questions: TRL preference rows whose `chosen` is the right answer.")
def add_gold(project: str = typer.Argument(...), file: str = typer.Argument(..., help="preferences JSONL"),
             db: Optional[str] = DB_OPT) -> None:
    from postlab.labelapp.ingest import read_gold_pairs

    print(f"{project}: {_store(db).add_gold(project, read_gold_pairs(file))} gold questions added")


@admin_app.command("export", help="Write preferences (TRL format), edits (SFT JSONL) or flags as JSONL.")
def export_cmd(project: str = typer.Argument(...),
               kind: str = typer.Option("preferences", "--kind", help="preferences | edits | flags"),
               votes: str = typer.Option("majority", "--votes", help="preferences: majority | all"),
               out: str = typer.Option(..., "--out", help="JSONL file to write"),
               db: Optional[str] = DB_OPT) -> None:
    from pathlib import Path

    from postlab.labelapp import export
    from postlab.utils.io import atomic_write_text

    rows = export.export_rows(_store(db), project, kind, votes)
    atomic_write_text(Path(out), export.to_jsonl(rows))
    print(f"wrote {len(rows)} {kind} rows to {out}")


@admin_app.command("quality", help="Agreement (Cohen's κ, Krippendorff's α) and gold accuracy per rater, as JSON.")
def quality_cmd(project: str = typer.Argument(...), db: Optional[str] = DB_OPT) -> None:
    import json

    from postlab.labelapp import export

    print(json.dumps(export.quality(_store(db), project), indent=2))
