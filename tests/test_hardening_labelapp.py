"""Hardening of the labeling app (issue 16, items 8-12): gold questions a rater could spot, tokens that
could not be revoked, a locked or corrupt database, requests that crashed the app or were answered
outside its error format, and the admin page's slips."""

import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from conftest import write_jsonl
from postlab.labelapp.app import COOKIE, CSP, create_app, csrf_token
from postlab.labelapp.ingest import read_gold_pairs
from postlab.labelapp.models import Label, Pair
from postlab.labelapp.store import NotFound, Store, migrate
from test_labelapp import add_rater, bearer, db_url, make_project, store  # noqa: F401  (fixtures)

BIG_ID = 2**63


def app_client(store, **kw) -> TestClient:
    return TestClient(create_app(store, **kw), follow_redirects=False, raise_server_exceptions=False)


def add_gold(store, tmp_path, n: int) -> None:
    rows = [{"prompt": f"What is {i} + {i}?", "chosen": f"{2 * i}.", "rejected": f"{2 * i + 1}.", "prompt_id": f"g{i}"}
            for i in range(n)]
    store.add_gold("proj", read_gold_pairs(str(write_jsonl(tmp_path / "gold.jsonl", rows))))


def assert_app_error(r, status: int, *, field: str | None = None):
    """The app's error format (JSON under /api/, the HTML error page elsewhere), with the security headers."""
    assert r.status_code == status, r.text
    assert r.headers["content-security-policy"] == CSP and r.headers["x-content-type-options"] == "nosniff"
    assert '"detail"' not in r.text
    if r.request.url.path.startswith("/api/"):
        error = r.json()["error"]
        assert error["message"] and error["type"]
        if field is not None:
            assert error["field"] == field
    else:
        assert r.headers["content-type"].startswith("text/html") and f"Error {status}" in r.text


# --- 8. gold questions cannot be told apart, nor their right side read off the API ---

def test_a_rater_cannot_spot_gold_answers_from_what_the_api_reveals(store, tmp_path):
    make_project(store, tmp_path, n_prompts=4, k=3, gold_every=2)  # 12 pairs, and gold about every other time
    add_gold(store, tmp_path, 40)
    ann = add_rater(store, "ann")
    admin = store.add_user("root", "admin")
    with store.read() as s:
        stored = Counter(s.scalars(select(Pair.gold_choice).where(Pair.gold_choice.is_not(None))))
    assert set(stored) == {"a", "b"}  # gold files list the right answer first; storage must not

    revealed_keys, gold_positions = set(), []
    with app_client(store) as client:
        for position in range(40):
            r = client.post("/api/projects/proj/next", headers=bearer(ann))
            if r.status_code == 204:
                break
            shown = r.json()
            draft = client.get(f"/api/labels/{shown['label_id']}", headers=bearer(ann)).json()
            listed = client.get("/api/projects/proj/labels", headers=bearer(ann)).json()
            assert [v for v in listed if v["status"] == "draft"] == [draft]
            revealed_keys |= {k for k, v in draft.items() if v is not None}
            # The cheat: "tie" on everything that does not look gold; on gold, the side the pair was stored on.
            if draft.get("gold"):
                choice = {"choice": "b" if draft["swapped"] else "a", "strength": "better"}
            else:
                choice = {"choice": "tie"}
            view = client.post(f"/api/labels/{shown['label_id']}", json=choice, headers=bearer(ann)).json()
            if view["gold"]:  # revealed once answered
                gold_positions.append(position)
        quality = client.get("/api/projects/proj/quality", headers=bearer(admin)).json()
    (rater,) = quality["raters"]
    assert rater["gold_answered"] >= 5
    assert rater["gold_accuracy"] <= 0.5  # no better than a coin (here: every gold answered "tie")
    assert revealed_keys <= {"label_id", "rater", "status", "edits", "flags"}
    assert gold_positions != list(range(1, 2 * len(gold_positions), 2))  # not every second assignment


def test_gold_questions_are_still_served_at_the_raters_share(store, tmp_path):
    make_project(store, tmp_path, n_prompts=2, k=3, gold_every=2)  # 6 pairs
    add_gold(store, tmp_path, 10)
    ann = add_rater(store, "ann")
    with app_client(store) as client:
        views = []
        while (r := client.post("/api/projects/proj/next", headers=bearer(ann))).status_code == 200:
            views.append(client.post(f"/api/labels/{r.json()['label_id']}", json={"choice": "tie"},
                                     headers=bearer(ann)).json())
    n_gold = sum(v["gold"] for v in views)
    assert len(views) - n_gold == 6 and n_gold >= 6  # every pair, and one gold in two assignments at least


# --- 9. sessions are not credentials; tokens and memberships can be taken back ---

def login(client: TestClient, token: str) -> str:
    """Log in through the form, as a browser does; returns the session cookie it sets."""
    client.get("/login")
    r = client.post("/login", data={"token": token, "csrf": client.cookies.get("postlab_login_csrf")})
    assert r.status_code == 303, r.text
    return client.cookies.get(COOKIE)


def admin_cli(*args: str):
    from postlab.cli import app

    return CliRunner().invoke(app, ["label-app", "admin", *args])


def test_logout_ends_the_session_on_the_server(store, tmp_path):
    make_project(store, tmp_path)
    ann = add_rater(store, "ann")
    with app_client(store) as client:
        session = login(client, ann)
        assert session and ann not in session  # the cookie carries a session id, not the credential
        assert client.get("/").status_code == 200
        assert client.get("/api/me", headers=bearer(session)).status_code == 401  # a session id is no token
        assert client.post("/logout", data={"csrf": csrf_token(session)}).status_code == 303
    with app_client(store) as thief:  # someone who copied the cookie before the logout
        thief.cookies.set(COOKIE, session)
        assert thief.get("/").headers.get("location") == "/login"
        assert_app_error(thief.get("/api/me"), 401)
        assert thief.get("/api/me", headers=bearer(ann)).json()["name"] == "ann"  # logging out keeps the token
        from postlab.labelapp.models import LoginSession

        thief.cookies.clear()
        login(thief, ann)
        assert thief.get("/api/me").status_code == 200
        with store.tx() as s:  # sessions end on their own too
            s.execute(update(LoginSession).values(expires_at=LoginSession.created_at))
        assert_app_error(thief.get("/api/me"), 401)


def test_revoked_tokens_and_removed_members_lose_access_but_keep_their_labels(store, db_url, tmp_path):
    make_project(store, tmp_path, n_prompts=2, k=3)  # 6 pairs, overlap 1
    make_project(store, tmp_path, "other")
    ann, bob = add_rater(store, "ann"), add_rater(store, "bob")
    store.add_member("other", "ann")
    with app_client(store) as client:
        first = client.post("/api/projects/proj/next", headers=bearer(ann)).json()["label_id"]
        client.post(f"/api/labels/{first}", json={"choice": "a", "strength": "better"}, headers=bearer(ann))
        draft = client.post("/api/projects/proj/next", headers=bearer(ann)).json()["label_id"]
        # Removing ann from proj: her open assignment goes back to the others, her answer stays.
        r = admin_cli("remove-member", "proj", "ann", "--db", db_url)
        assert r.exit_code == 0 and "released 1 open assignment" in r.output, r.output
        assert_app_error(client.get("/api/projects/proj/progress", headers=bearer(ann)), 404)
        assert_app_error(client.post("/api/projects/proj/next", headers=bearer(ann)), 404)
        assert_app_error(client.post(f"/api/labels/{draft}", json={"choice": "tie"}, headers=bearer(ann)), 404)
        assert client.post("/api/projects/other/next", headers=bearer(ann)).status_code == 200  # other projects stay
        bob_pairs = []
        while (r := client.post("/api/projects/proj/next", headers=bearer(bob))).status_code == 200:
            view = client.post(f"/api/labels/{r.json()['label_id']}", json={"choice": "tie"}, headers=bearer(bob))
            bob_pairs.append(view.json()["pair_id"])
        assert len(bob_pairs) == 5  # every pair but the one ann answered, hers included
        # Revoking ann's token: her sessions and the token stop working at once; a new token works.
        login(client, ann)
        assert client.get("/api/me").status_code == 200
        r = admin_cli("revoke-token", "ann", "--db", db_url)
        assert r.exit_code == 0 and "revoked" in r.output and "1 session" in r.output, r.output
        assert_app_error(client.get("/api/me"), 401)
        assert_app_error(client.get("/api/me", headers=bearer(ann)), 401)
        client.cookies.clear()
        client.get("/login")
        r = client.post("/login", data={"token": ann, "csrf": client.cookies.get("postlab_login_csrf")})
        assert r.status_code == 401 and client.cookies.get(COOKIE) is None
        r = admin_cli("new-token", "ann", "--db", db_url)
        new = r.output.strip().split()[-1]
        assert r.exit_code == 0 and len(new) >= 30 and new != ann
        assert client.get("/api/me", headers=bearer(new)).json()["name"] == "ann"
        assert_app_error(client.get("/api/me", headers=bearer(ann)), 401)
        assert "not found" in str(admin_cli("revoke-token", "nobody", "--db", db_url).exception)
    answers = {(rater, pair.id) for _, pair, rater in store.submitted("proj")}
    assert len(answers) == 6 and ("ann", store.label_view(first, store.user_by_token(new))["pair_id"]) in answers


# --- 10. a locked or corrupt database ---

@pytest.fixture
def sqlite_store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'labels.db'}")
    migrate(s.engine)
    yield s
    s.close()


def hold_lock(path, *, exclusive: bool) -> sqlite3.Connection:
    """Another process's connection holding the write lock; ``exclusive`` (locking_mode=EXCLUSIVE, taken
    while nobody else has the file open) shuts readers out too."""
    conn = sqlite3.connect(path, isolation_level=None)
    if exclusive:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE projects SET overlap = overlap")
    return conn


@contextmanager
def another_writer(store: Store, db_url: str):
    """Another process holding the write lock while the block runs: SQLite's, or on PostgreSQL an
    exclusive lock on the labels table (reads go on, writes wait)."""
    if store.engine.dialect.name == "sqlite":
        conn = hold_lock(make_url(db_url).database, exclusive=False)
        try:
            yield
        finally:
            conn.close()
        return
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("LOCK TABLE labels IN EXCLUSIVE MODE"))
            try:
                yield
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def test_a_locked_database_answers_503_with_retry_after_within_seconds(store, db_url, tmp_path):
    make_project(store, tmp_path)
    ann = add_rater(store, "ann")
    with app_client(store) as client:
        with another_writer(store, db_url):
            start = time.monotonic()
            assert client.get("/api/projects/proj/progress", headers=bearer(ann)).status_code == 200  # reads go on
            assert time.monotonic() - start < 2
            start = time.monotonic()
            r = client.post("/api/projects/proj/next", headers=bearer(ann))
            waited = time.monotonic() - start
        assert_app_error(r, 503)
        assert r.json()["error"]["type"] == "DatabaseBusy" and int(r.headers["retry-after"]) >= 1
        assert 1 <= waited < 10  # a short, bounded wait (not 30 s), and a wait at all before giving up
        label_id = client.post("/api/projects/proj/next", headers=bearer(ann)).json()["label_id"]  # lock gone
        assert client.post(f"/api/labels/{label_id}", json={"choice": "tie"}, headers=bearer(ann)).status_code == 200
    assert len(store.submitted("proj")) == 1


def test_a_database_locked_against_readers_answers_503_on_pages_too(sqlite_store, tmp_path):
    make_project(sqlite_store, tmp_path)
    ann = add_rater(sqlite_store, "ann")
    path = tmp_path / "labels.db"
    with app_client(sqlite_store) as client:
        sqlite_store.engine.dispose()  # as after a restart: the app opens new connections
        locker = hold_lock(path, exclusive=True)
        try:
            start = time.monotonic()
            r = client.get("/api/me", headers=bearer(ann))
            assert time.monotonic() - start < 10
            assert_app_error(r, 503)
            client.cookies.set(COOKIE, "whatever")
            page = client.get("/")
            assert_app_error(page, 503)
            assert "busy" in page.text and page.headers["retry-after"]
        finally:
            locker.close()
        client.cookies.clear()
        assert client.get("/api/me", headers=bearer(ann)).status_code == 200  # lock gone


def corrupt_copy(store: Store, tmp_path) -> list:
    """Two broken database files: random bytes, and a real store with a page in the middle overwritten."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 1000)
    make_project(store, tmp_path, n_prompts=100, k=4)
    store.close()
    damaged = tmp_path / "labels.db"
    data = bytearray(damaged.read_bytes())
    assert len(data) > 16 * 4096
    data[8 * 4096:12 * 4096] = b"\xff" * (4 * 4096)
    damaged.write_bytes(bytes(data))
    return [junk, damaged]


def test_a_corrupt_database_is_one_line_naming_the_file(sqlite_store, tmp_path, monkeypatch, capsys):
    from postlab.cli import main

    for path in corrupt_copy(sqlite_store, tmp_path):
        for command in (["admin", "migrate"], ["admin", "quality", "proj"]):
            monkeypatch.setattr(sys, "argv", ["postlab", "label-app", *command, "--db", f"sqlite:///{path}"])
            with pytest.raises(SystemExit) as exit_info:
                main()
            err = capsys.readouterr().err
            assert exit_info.value.code != 0
            assert err.count("\n") == 1 and str(path) in err and "corrupt" in err, err
    r = subprocess.run([sys.executable, "-m", "postlab", "label-app", "serve", "--port", "0", "--db", f"sqlite:///{path}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and str(path) in r.stderr


# --- 11. requests that crashed the app or escaped its error format ---

def test_huge_ids_and_lone_surrogates_are_4xx_in_the_apps_format(store, tmp_path):
    make_project(store, tmp_path)
    ann = add_rater(store, "ann")
    with app_client(store) as client:
        assert_app_error(client.get(f"/api/labels/{BIG_ID}", headers=bearer(ann)), 422, field="label_id")
        assert_app_error(client.post(f"/api/labels/{BIG_ID}", json={"choice": "tie"}, headers=bearer(ann)), 422,
                         field="label_id")
        assert_app_error(client.post(f"/api/labels/{BIG_ID}/skip", headers=bearer(ann)), 422, field="label_id")
        assert_app_error(client.post(f"/p/proj/labels/{BIG_ID}", data={"choice": "tie"}, headers=bearer(ann)), 422)
        assert_app_error(client.get(f"/api/labels/{2**63 - 1}", headers=bearer(ann)), 404, field="label_id")
        label_id = client.post("/api/projects/proj/next", headers=bearer(ann)).json()["label_id"]
        body = b'{"choice": "a", "strength": "better", "edit": "fine \\ud800 text"}'
        r = client.post(f"/api/labels/{label_id}", content=body,
                        headers={**bearer(ann), "Content-Type": "application/json"})
        assert_app_error(r, 400, field="edit")
        assert "surrogate" in r.json()["error"]["message"]
        r = client.post(f"/api/labels/{label_id}", content=b'{"choice": "a", "strength": "better", "edit": "caf\xe9"}',
                        headers={**bearer(ann), "Content-Type": "application/json"})
        assert_app_error(r, 400)
        assert "not valid UTF-8" in r.json()["error"]["message"]
        assert client.post(f"/api/labels/{label_id}", json={"choice": "a", "strength": "better", "edit": "fine"},
                           headers=bearer(ann)).status_code == 200  # the label was left open
    with pytest.raises(NotFound):
        store.label_view(BIG_ID, store.user_by_token(ann))


def test_bad_form_data_and_big_bodies_are_4xx_in_the_apps_format(store, tmp_path):
    make_project(store, tmp_path)
    ann = add_rater(store, "ann")
    with app_client(store) as client:
        label_id = client.post("/api/projects/proj/next", headers=bearer(ann)).json()["label_id"]
        url = f"/p/proj/labels/{label_id}"
        long_field = {"choice": "a", "strength": "better", "edit": "x" * 1_100_000}  # Starlette caps fields at 1 MiB
        assert_app_error(client.post(url, data=long_field, headers=bearer(ann)), 400)
        multipart = {"choice": (None, b"a"), "strength": (None, b"better"), "edit": (None, b"x" * 1_100_000)}
        assert_app_error(client.post(url, files=multipart, headers=bearer(ann)), 400)
        bad_utf8 = b"choice=a&strength=better&edit=caf\xe9"
        r = client.post(url, content=bad_utf8,
                        headers={**bearer(ann), "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code in (303, 400), r.text  # read as replacement characters, or refused: never a 500
        assert_app_error(client.get("/api/no-such-route", headers=bearer(ann)), 404)
    with app_client(store, max_body_bytes=1000) as client:
        big = {"choice": "a", "strength": "better", "edit": "x" * 5000}
        assert_app_error(client.post("/api/labels/1", json=big, headers=bearer("not-a-token")), 413)
        assert_app_error(client.post(url, data=big, headers=bearer(ann)), 413)

        def chunks():  # no Content-Length: the limit holds while the body streams in
            for _ in range(10):
                yield b"x" * 500

        r = client.post("/api/labels/1", content=chunks(), headers={**bearer(ann), "Content-Type": "application/json"})
        assert_app_error(r, 413)
        assert "at most 1000 bytes" in r.json()["error"]["message"]


def test_server_errors_keep_the_format_and_the_security_headers(store, tmp_path, monkeypatch):
    make_project(store, tmp_path)
    ann = add_rater(store, "ann")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "progress", broken)
    with app_client(store) as client:
        r = client.get("/api/projects/proj/progress", headers=bearer(ann))
        assert_app_error(r, 500)
        assert "disk on fire" not in r.text  # details go to the log, not to the client
        client.cookies.set(COOKIE, store.open_session(ann))
        assert_app_error(client.get("/p/proj"), 500)


# --- 12. the admin project page ---

def test_admin_page_kappa_table_and_admins_take_no_pairs(store, tmp_path):
    make_project(store, tmp_path, n_prompts=2, k=3, overlap=2)
    raters = {name: add_rater(store, name) for name in ("ann", "bob")}
    admin = store.add_user("root", "admin")
    with app_client(store) as client:
        for i, token in enumerate(raters.values()):
            while (r := client.post("/api/projects/proj/next", headers=bearer(token))).status_code == 200:
                side = "a" if (r.json()["label_id"] + i) % 3 else "b"
                client.post(f"/api/labels/{r.json()['label_id']}", json={"choice": side, "strength": "better"},
                            headers=bearer(token))
        page = client.get("/admin/p/proj", headers=bearer(admin))
        assert page.status_code == 200
        table = page.text.split('id="kappa"')[1].split("</table>")[0]
        assert "built-in method" not in table and "<td>ann / bob</td><td>6</td>" in table
        # An admin opening the rating page is shown the admin page; no pair is assigned to them.
        r = client.get("/p/proj", headers=bearer(admin))
        assert r.status_code == 303 and r.headers["location"] == "/admin/p/proj"
        r = client.post("/api/projects/proj/next", headers=bearer(admin))
        assert r.status_code == 403 and "add-member" in r.json()["error"]["message"]
        with store.read() as s:
            assert s.scalar(select(Label).where(Label.user_id == store.user_by_token(admin).id)) is None
        # An admin who is also a member rates like anyone.
        store.add_member("proj", "root")
        assert client.get("/p/proj", headers=bearer(admin)).status_code == 200
        assert client.post("/api/projects/proj/next", headers=bearer(admin)).status_code in (200, 204)
        # Raters outside a project still cannot tell it exists.
        make_project(store, tmp_path, "other")
        assert client.get("/p/other", headers=bearer(raters["ann"])).status_code == 404


def test_writers_in_one_process_queue_in_turn_instead_of_starving(tmp_path):
    """SQLite's busy handler polls with growing sleeps, so among many writers in one process some lose
    every race and time out (CI saw a 503 with 20 raters on a 2-core machine). Writers of one store queue
    for the lock in turn: 20 threads × 5 transactions of ~20 ms each need ~2 s of lock time in all, and
    none may wait past a 1 s timeout for its turn."""
    import threading

    s = Store(f"sqlite:///{tmp_path / 'labels.db'}", busy_timeout_s=1.0)
    migrate(s.engine)
    s.add_user("admin", "admin")
    errors: list[BaseException] = []

    def writer() -> None:
        for _ in range(5):
            try:
                with s.tx() as session:
                    session.execute(text("UPDATE users SET name = name"))
                    time.sleep(0.02)  # a transaction that holds the lock a while, as on a slow machine
            except Exception as e:  # noqa: BLE001
                errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    s.close()
    assert not errors, f"{len(errors)} of 100 writes timed out: {errors[0]}"


def test_turn_lock_serves_waiters_in_arrival_order_and_drops_those_who_gave_up():
    import threading

    from postlab.labelapp.turns import TurnLock

    lock, order = TurnLock(), []
    assert lock.acquire(0.1)
    assert not lock.acquire(0.05)  # held: a short wait runs out, and the one who gave up leaves the queue

    def waiter(i: int) -> None:
        assert lock.acquire(10)
        order.append(i)
        lock.release()

    threads = []
    for i in range(5):  # queue up one by one, so arrival order is known
        threads.append(threading.Thread(target=waiter, args=(i,)))
        threads[-1].start()
        while len(lock._waiting) < i + 1:
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert lock.acquire(0) and not lock._waiting  # free again once the last one released
