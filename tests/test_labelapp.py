"""The labeling app: agreement math, store, migrations, auth, concurrency, exports, the rm round trip, a real browser.

Store-backed tests run on SQLite, and on PostgreSQL when POSTLAB_TEST_DATABASE_URL is set (`.ci/run` starts one).
"""

import functools
import json
import os
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from conftest import CHROMIUM_ARGS, chromium_executable, write_jsonl
from postlab.errors import DataError
from postlab.labelapp.agreement import cohen_kappa, krippendorff_alpha
from postlab.labelapp.store import Store, migrate

PG_URL = os.environ.get("POSTLAB_TEST_DATABASE_URL")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "labelapp"
XSS = "<script>window.__xss = 1</script><b>bold?</b> & done"


# --- agreement, computed by hand ---

def test_cohen_kappa_hand_computed():
    # 10 items, two raters:      R2=a  R2=b
    #                     R1=a     4     1      R1: a 5, b 5
    #                     R1=b     2     3      R2: a 6, b 4
    # p_o = 7/10 = 0.7;  p_e = 0.5·0.6 + 0.5·0.4 = 0.5;  κ = (0.7 − 0.5) / (1 − 0.5) = 0.4
    pairs = [("a", "a")] * 4 + [("a", "b")] + [("b", "a")] * 2 + [("b", "b")] * 3
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a"), ("b", "b")]) == pytest.approx(1.0)
    assert cohen_kappa([("a", "a")] * 3) is None  # p_e = 1: undefined
    assert cohen_kappa([]) is None


def test_krippendorff_alpha_hand_computed():
    # The κ table above as 10 units of two values: n_a = 5 + 6 = 11, n_b = 9, n = 20.
    # The 3 disagreeing units put 1 in o_ab and 1 in o_ba each: D = 6. Σ_{c≠k} n_c n_k = 2·11·9 = 198.
    # α = 1 − (n − 1)·D / 198 = 1 − 19·6/198 = 1 − 114/198 = 0.42424...
    pairs = [("a", "a")] * 4 + [("a", "b")] + [("b", "a")] * 2 + [("b", "b")] * 3
    assert krippendorff_alpha({i: list(p) for i, p in enumerate(pairs)}) == pytest.approx(1 - 114 / 198)
    # Three raters, missing values: u1 (a,a,a), u2 (a,b), u3 (b,tie,b), u4 (a) (unpairable, ignored).
    # o: u1 gives o_aa = 6·1/2 = 3; u2 gives o_ab = o_ba = 1; u3 gives o_bb = 2/2 = 1, o_b,tie = o_tie,b = 2/2 = 1.
    # n_a = 3 + 1 = 4, n_b = 1 + 1 + 1 = 3, n_tie = 1, n = 8; D = 2 + 2 = 4;
    # Σ_{c≠k} n_c n_k = 2·(4·3 + 4·1 + 3·1) = 38;  α = 1 − 7·4/38 = 1 − 28/38 = 0.26315...
    units = {1: ["a", "a", "a"], 2: ["a", "b"], 3: ["b", "tie", "b"], 4: ["a"]}
    assert krippendorff_alpha(units) == pytest.approx(1 - 28 / 38)
    assert krippendorff_alpha({1: ["a", "a"], 2: ["a", "a"]}) is None


# --- fixtures ---

@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.db'}"
    if not PG_URL:
        pytest.skip("POSTLAB_TEST_DATABASE_URL not set (.ci/run starts PostgreSQL)")
    from sqlalchemy import create_engine, text

    url = worker_database(PG_URL)
    engine = create_engine(url)
    with engine.begin() as conn:  # a clean database for every test
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@functools.cache
def worker_database(url: str) -> str:
    """Under pytest-xdist, a database of each worker's own (``postlab_test_gw1``), created on first use (once per
    worker process), so that two workers never wipe each other's tables; the given database otherwise."""
    from sqlalchemy import create_engine, make_url, text

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    migrate(s.engine)
    yield s
    s.close()


def candidates(n_prompts: int, k: int = 3, extra: dict | None = None) -> list[dict]:
    """`postlab sample` rows; k distinct completions per prompt -> k·(k−1)/2 pairs each."""
    rows = []
    for i in range(n_prompts):
        for j in range(k):
            text = (extra or {}).get((i, j), f"answer {j} to question {i}")
            rows.append({"prompt_id": f"q{i}", "sample_index": j, "prompt": [{"role": "user", "content": f"Question {i}?"}],
                         "completion": text, "logprob_sum": -1.0, "num_tokens": 3, "finish_reason": "stop"})
    return rows


def make_project(store: Store, tmp_path: Path, name="proj", *, n_prompts=2, k=3, overlap=1, gold_every=1000,
                 extra=None) -> int:
    from postlab.labelapp.ingest import read_candidate_pairs

    path = write_jsonl(tmp_path / f"{name}-cands.jsonl", candidates(n_prompts, k, extra))
    return store.create_project(name, read_candidate_pairs(str(path), max_pairs_per_prompt=6, seed=0), overlap=overlap,
                                gold_every=gold_every)


def add_rater(store: Store, name: str, project="proj") -> str:
    token = store.add_user(name, "rater")
    store.add_member(project, name)
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def live_server(store: Store):
    """The app under uvicorn in a thread, on a free port."""
    import uvicorn

    from postlab.labelapp.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def client(store):
    from fastapi.testclient import TestClient

    from postlab.labelapp.app import create_app

    with TestClient(create_app(store), follow_redirects=False) as c:
        yield c


def label_all(client, token: str, project: str, choose) -> list[dict]:
    """Label everything a rater is given through the API; ``choose(assignment) -> body``."""
    done = []
    while True:
        r = client.post(f"/api/projects/{project}/next", headers=bearer(token))
        if r.status_code == 204:
            return done
        assert r.status_code == 200, r.text
        a = r.json()
        body = choose(a)
        r = client.post(f"/api/labels/{a['label_id']}", json=body, headers=bearer(token))
        assert r.status_code == 200, r.text
        done.append({**a, **body, "view": r.json()})


# --- ingest and admin CLI ---

def test_bad_candidates_row_names_file_and_line(tmp_path):
    from postlab.labelapp.ingest import read_candidate_pairs

    rows = candidates(1) + [{"prompt_id": "q9", "sample_index": 0, "prompt": "not messages", "completion": "x"}]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    with pytest.raises(DataError, match=rf"{path}:4: prompt"):
        read_candidate_pairs(str(path), max_pairs_per_prompt=6, seed=0)
    path = write_jsonl(tmp_path / "d.jsonl", candidates(1) + [{"prompt_id": "q0", "prompt": [], "sample_index": 5}])
    with pytest.raises(DataError, match=rf"{path}:4: missing 'completion'"):
        read_candidate_pairs(str(path), max_pairs_per_prompt=6, seed=0)
    pairs = read_candidate_pairs(str(write_jsonl(tmp_path / "e.jsonl", candidates(2, k=4))), max_pairs_per_prompt=2, seed=0)
    assert len(pairs) == 4 and all(p.response_a != p.response_b for p in pairs)


def test_admin_cli_creates_project_raters_gold_and_exports(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import postlab.labelapp.store as store_module

    # gold questions are drawn at random (1 in gold_every); this test is about drafts, so none is drawn
    monkeypatch.setattr(store_module.secrets, "randbelow", lambda n: n - 1)

    from postlab.cli import app

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    cands = write_jsonl(tmp_path / "cands.jsonl", candidates(2))
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome."}])
    run = CliRunner().invoke
    r = run(app, ["label-app", "admin", "create-project", "proj", "--candidates", str(cands), "--overlap", "2", "--db", db])
    assert r.exit_code == 0 and "6 pairs from 2 prompts" in r.output, r.output
    r = run(app, ["label-app", "admin", "add-rater", "ann", "--project", "proj", "--db", db])
    token = r.output.strip().split()[-1]
    assert r.exit_code == 0 and len(token) >= 30
    assert run(app, ["label-app", "admin", "add-gold", "proj", str(gold), "--db", db]).exit_code == 0
    assert run(app, ["label-app", "admin", "set-overlap", "proj", "3", "--db", db]).exit_code == 0
    store = Store(db)
    assert store.project_summary("proj") | {"raters": ["ann"]} == {
        "name": "proj", "overlap": 3, "gold_every": 5, "pairs": 6, "gold_questions": 1, "raters": ["ann"], "instructions": ""}
    user = store.user_by_token(token)
    assert user.name == "ann" and user.role == "rater"
    assert token not in Path(tmp_path / "cli.db").read_bytes().decode("latin-1")  # only the hash is stored
    r = run(app, ["label-app", "admin", "create-project", "proj", "--candidates", str(cands), "--db", db])
    assert "already exists" in str(r.exception)
    bad = write_jsonl(tmp_path / "bad.jsonl", candidates(1)[:2] + ["{not json"])
    r = run(app, ["label-app", "admin", "create-project", "p2", "--candidates", str(bad), "--db", db])
    assert isinstance(r.exception, DataError) and f"{bad}:3: invalid JSON" in str(r.exception)
    # An abandoned assignment holds its pair until released; then another rater gets it.
    pair_held = store.next_label("proj", user)[1].id
    store.set_overlap("proj", 1)
    bob = store.user_by_token(run(app, ["label-app", "admin", "add-rater", "bob", "--project", "proj", "--db", db])
                              .output.strip().split()[-1])
    assert store.next_label("proj", bob)[1].id != pair_held
    r = run(app, ["label-app", "admin", "release-drafts", "proj", "--older-than-minutes", "0", "--db", db])
    assert "released 2 " in r.output
    assert store.next_label("proj", bob)[1].id == pair_held
    out = tmp_path / "prefs.jsonl"
    r = run(app, ["label-app", "admin", "export", "proj", "--out", str(out), "--db", db])
    assert r.exit_code == 0 and out.read_text() == ""  # nothing labelled yet
    store.close()


# --- migrations ---

def test_upgrade_from_first_revision_keeps_every_label(db_url):
    from sqlalchemy import text

    from postlab.labelapp import export
    from postlab.labelapp.store import current_revision

    store = Store(db_url)
    migrate(store.engine, "0001")
    assert current_revision(store.engine) == "0001"
    now = "2024-01-01 00:00:00"
    with store.engine.begin() as c:  # rows written by a 0001-era app, through plain SQL
        c.execute(text("INSERT INTO users (id, name, role, token_hash, created_at) VALUES "
                       "(1, 'ann', 'rater', 'h1', :t), (2, 'bob', 'rater', 'h2', :t)"), {"t": now})
        c.execute(text("INSERT INTO projects (id, name, overlap, gold_every, created_at) VALUES (1, 'old', 2, 5, :t)"),
                  {"t": now})
        c.execute(text("INSERT INTO pairs (id, project_id, prompt_id, prompt_json, response_a, response_b, sample_a, "
                       "sample_b) VALUES (1, 1, 'q0', :p, 'first', 'second', 0, 1)"),
                  {"p": json.dumps([{"role": "user", "content": "Hi?"}])})
        c.execute(text("INSERT INTO labels (id, pair_id, user_id, status, swapped, choice, strength, created_at, "
                       "submitted_at) VALUES (1, 1, 1, 'submitted', :f, 'a', 'much better', :t, :t), "
                       "(2, 1, 2, 'submitted', :tr, 'b', 'slightly better', :t, :t)"), {"t": now, "f": False, "tr": True})
        c.execute(text("INSERT INTO revisions (id, label_id, side, text, created_at) VALUES (1, 1, 'a', 'first, edited', :t)"),
                  {"t": now})
        c.execute(text("INSERT INTO flags (id, label_id, side, kind) VALUES (1, 2, 'a', 'unsafe')"))
    migrate(store.engine)
    assert current_revision(store.engine) == "0003"
    got = {(lab.id, lab.choice, lab.strength, lab.swapped, rater) for lab, _, rater in store.submitted("old")}
    assert got == {(1, "a", "much better", False, "ann"), (2, "b", "slightly better", True, "bob")}
    assert [r["messages"][-1]["content"] for r in export.edits(store, "old")] == ["first, edited"]
    assert [(r["flag"], r["response"]) for r in export.flags(store, "old")] == [("unsafe", "first")]
    assert store.project_summary("old")["instructions"] == ""  # the new column, defaulted
    assert store.user_by_token("x") is None and store.revoke_token("ann") == 0  # 0003: revocable tokens
    store.close()


# --- auth, validation, escaping ---

def test_auth_isolation_and_escaping(store, tmp_path, client):
    from postlab.labelapp.app import COOKIE, csrf_token

    make_project(store, tmp_path, extra={(1, 1): XSS})  # q1: the pairs bob gets
    ann, bob = add_rater(store, "ann"), add_rater(store, "bob")
    admin = store.add_user("root", "admin")
    # No token, wrong token.
    assert client.post("/api/projects/proj/next").status_code == 401
    assert client.get("/api/me", headers=bearer("nope")).status_code == 401
    assert client.get("/api/projects/proj/labels").json()["error"]["type"] == "NotLoggedIn"
    assert client.get("/").headers["location"] == "/login"
    a = client.post("/api/projects/proj/next", headers=bearer(ann)).json()
    assert client.post(f"/api/labels/{a['label_id']}", json={"choice": "a", "strength": "better"}).status_code == 401
    r = client.post(f"/api/labels/{a['label_id']}", json={"choice": "a", "strength": "better"}, headers=bearer(ann))
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    # Bob cannot see Ann's label, her list, the export or the quality page; Ann's list is hers only.
    assert client.get(f"/api/labels/{a['label_id']}", headers=bearer(bob)).status_code == 404
    assert client.post(f"/api/labels/{a['label_id']}/skip", headers=bearer(bob)).status_code == 404
    assert client.get("/api/projects/proj/labels?rater=ann", headers=bearer(bob)).status_code == 403
    assert client.get("/api/projects/proj/labels", headers=bearer(bob)).json() == []
    assert [v["rater"] for v in client.get("/api/projects/proj/labels", headers=bearer(ann)).json()] == ["ann"]
    for path in ("/api/projects/proj/export", "/api/projects/proj/quality", "/admin", "/admin/p/proj"):
        assert client.get(path, headers=bearer(bob)).status_code == 403, path
    assert client.get("/api/projects/proj/export", headers=bearer(admin)).status_code == 200
    assert [v["rater"] for v in client.get("/api/projects/proj/labels?rater=ann", headers=bearer(admin)).json()] == ["ann"]
    # A rater outside a project cannot tell it exists.
    make_project(store, tmp_path, "other")
    assert client.post("/api/projects/other/next", headers=bearer(ann)).status_code == 404
    # Validation: clear 4xx naming the field; no double submission.
    b = client.post("/api/projects/proj/next", headers=bearer(ann)).json()
    url = f"/api/labels/{b['label_id']}"
    r = client.post(url, json={"choice": "left"}, headers=bearer(ann))
    assert r.status_code == 422 and r.json()["error"]["field"] == "choice"
    r = client.post(url, json={"choice": "a"}, headers=bearer(ann))
    assert r.status_code == 400 and r.json()["error"]["field"] == "strength"
    r = client.post(url, json={"choice": "tie", "edit": "new text"}, headers=bearer(ann))
    assert r.status_code == 400 and "edit" in r.json()["error"]["message"]
    r = client.post(url, json={"choice": "a", "strength": "better", "flags": {"a": ["rude"]}}, headers=bearer(ann))
    assert r.status_code == 422 and r.json()["error"]["field"].startswith("flags")
    assert client.post(url, json={"choice": "tie"}, headers=bearer(ann)).status_code == 200
    r = client.post(url, json={"choice": "a", "strength": "better"}, headers=bearer(ann))
    assert r.status_code == 409 and "already submitted" in r.json()["error"]["message"]
    assert client.get("/api/labels/abc", headers=bearer(ann)).json()["error"]["field"] == "label_id"
    # Cookie sessions: forms need the CSRF token.
    ann_session = store.open_session(ann)  # what logging in at /login sets as the cookie
    client.cookies.set(COOKIE, ann_session)
    page = client.get("/p/proj")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    label_id = int(page.text.split("/p/proj/labels/")[1].split('"')[0])
    form = {"action": "submit", "choice": "b", "strength": "better"}
    assert client.post(f"/p/proj/labels/{label_id}", data=form).status_code == 403
    r = client.post(f"/p/proj/labels/{label_id}", data={**form, "choice": "maybe", "csrf": csrf_token(ann_session)})
    assert r.status_code == 400 and "choice" in r.text and "<html" in r.text
    assert client.post(f"/p/proj/labels/{label_id}", data={**form, "csrf": csrf_token(ann_session)}).status_code == 303
    # Markup in model outputs renders as text (Jinja autoescape); find the XSS pair on someone's page.
    bob_session = store.open_session(bob)
    client.cookies.set(COOKIE, bob_session)
    pages = [client.get("/p/proj").text]
    while "&lt;script&gt;" not in pages[-1] and 'id="done"' not in pages[-1]:
        lid = int(pages[-1].split("/p/proj/labels/")[1].split('"')[0])
        client.post(f"/p/proj/labels/{lid}", data={"action": "skip", "csrf": csrf_token(bob_session)})
        pages.append(client.get("/p/proj").text)
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;b&gt;bold?&lt;/b&gt; &amp; done" in pages[-1]
    assert "<script>window" not in pages[-1] and "<b>bold" not in pages[-1]


# --- concurrency ---

def test_twenty_raters_in_parallel_lose_nothing_and_respect_overlap(store, tmp_path):
    n_pairs = make_project(store, tmp_path, n_prompts=10, k=3, overlap=3)  # 30 pairs -> 90 labels
    tokens = {f"r{i:02d}": add_rater(store, f"r{i:02d}") for i in range(20)}
    done: dict[str, list[tuple[int, str]]] = {}
    errors: list[str] = []

    def rater(name: str, token: str) -> None:
        mine = []
        with httpx.Client(base_url=base, headers=bearer(token), timeout=60) as c:
            while True:
                r = c.post("/api/projects/proj/next")
                if r.status_code == 204:
                    break
                if r.status_code != 200:
                    errors.append(f"{name}: next {r.status_code} {r.text}")
                    return
                a = r.json()
                choice = "ab"[(a["label_id"] + len(name)) % 2]
                r = c.post(f"/api/labels/{a['label_id']}", json={"choice": choice, "strength": "better"})
                if r.status_code != 200:
                    errors.append(f"{name}: submit {r.status_code} {r.text}")
                    return
                mine.append((r.json()["pair_id"], r.json()["choice"]))
        done[name] = mine

    with live_server(store) as base:
        threads = [threading.Thread(target=rater, args=item) for item in tokens.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors[:3]
    labels = store.submitted("proj")
    per_pair = Counter(pair.id for _, pair, _ in labels)
    assert len(labels) == n_pairs * 3 == sum(len(v) for v in done.values())  # nothing lost, nothing extra
    assert set(per_pair.values()) == {3} and len(per_pair) == n_pairs  # overlap reached, never exceeded
    assert len({(pair.id, rater) for _, pair, rater in labels}) == len(labels)  # no rater saw a pair twice
    stored = Counter((rater, pair.id, label.choice) for label, pair, rater in labels)
    answered = Counter((name, pid, choice) for name, rows in done.items() for pid, choice in rows)
    assert stored == answered  # every answer stored exactly as the rater gave it
    assert sum(1 for rows in done.values() if rows) >= 10  # the work really was spread across raters


# --- exports, quality, gold, and the reward model round trip ---

def test_exports_quality_gold_and_rm_round_trip(store, tmp_path, client, db_url):
    from postlab.data.chat import load_chat_jsonl
    from postlab.data.preferences import load_preferences
    from postlab.labelapp.ingest import read_gold_pairs

    make_project(store, tmp_path, n_prompts=2, k=3, overlap=3, gold_every=2)
    gold_file = write_jsonl(tmp_path / "gold.jsonl", [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "prompt_id": "g1"},
        {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome", "prompt_id": "g2"}])
    store.add_gold("proj", read_gold_pairs(str(gold_file)))
    tokens = {n: add_rater(store, n) for n in ("ann", "bob", "cy")}
    admin = store.add_user("root", "admin")

    def prefer(first: bool, edit_by: str | None = None):
        """Prefer the canonical-first response (sample with the lower index) or the other one."""
        def choose(a):
            texts = (a["response_a"], a["response_b"])
            if "Paris" in texts or "4" in texts:  # gold: answer right
                return {"choice": "a" if texts[0] in ("Paris", "4") else "b", "strength": "much better"}
            low = min(texts, key=lambda t: int(t.split()[1]))
            want = low if first else next(t for t in texts if t != low)
            side = "a" if texts[0] == want else "b"
            body = {"choice": side, "strength": "better", "flags": {side: ["factual"]} if edit_by else {}}
            if edit_by:
                body["edit"] = want + " (edited by " + edit_by + ")"
            return body
        return choose

    ann = label_all(client, tokens["ann"], "proj", prefer(True, edit_by="ann"))
    bob = label_all(client, tokens["bob"], "proj", prefer(True))
    cy = label_all(client, tokens["cy"], "proj", prefer(False))
    assert len(ann) == len(bob) == len(cy) == 6 + 2  # six pairs plus both gold questions each
    # Majority: ann and bob agree on every pair -> 6 rows, chosen = the lower-index answer.
    r = client.get("/api/projects/proj/export?kind=preferences&votes=majority", headers=bearer(admin))
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 6 and all(r["votes"] == {"a": 2, "b": 1, "tie": 0} for r in rows)
    assert all(sorted(r["rater_ids"]) == ["ann", "bob"] and r["strength"] == "better" for r in rows)
    assert all(int(r["chosen"][0]["content"].split()[1]) < int(r["rejected"][0]["content"].split()[1]) for r in rows)
    assert all(r["chosen"][0]["role"] == "assistant" and r["prompt"][0]["role"] == "user" for r in rows)
    # All votes: one row per rater per pair, with rater ids; gold questions never exported.
    r = client.get("/api/projects/proj/export?kind=preferences&votes=all", headers=bearer(admin))
    all_rows = [json.loads(line) for line in r.text.splitlines()]
    assert Counter(r["rater_id"] for r in all_rows) == {"ann": 6, "bob": 6, "cy": 6}
    assert not {"g1", "g2"} & {r["prompt_id"] for r in all_rows}
    # Edits -> SFT rows `postlab sft` reads; flags name the response.
    r = client.get("/api/projects/proj/export?kind=edits", headers=bearer(admin))
    (tmp_path / "edits.jsonl").write_text(r.text)
    convs = load_chat_jsonl(tmp_path / "edits.jsonl")
    assert len(convs) == 6 and all(c[-1]["content"].endswith("(edited by ann)") for c in convs)
    flags = [json.loads(line) for line in client.get("/api/projects/proj/export?kind=flags", headers=bearer(admin)).text.splitlines()]
    assert len(flags) == 6 and all(f["flag"] == "factual" and f["rater_id"] == "ann" for f in flags)
    assert client.get("/api/projects/proj/export?kind=votes", headers=bearer(admin)).status_code == 400
    # Quality: ann and bob choose the lower sample index (canonical 'a') on every pair, cy always 'b';
    # everyone answers gold right.
    q = client.get("/api/projects/proj/quality", headers=bearer(admin)).json()
    assert [r["gold_accuracy"] for r in q["raters"]] == [1.0, 1.0, 1.0]
    kappa = {tuple(k["raters"]): k["kappa"] for k in q["kappa"]}
    assert kappa == {("ann", "bob"): None, ("ann", "cy"): 0.0, ("bob", "cy"): 0.0}  # p_e = 1 for ann/bob: undefined
    # units: every pair has (a, a, b): n_a = 12, n_b = 6, n = 18, D = 6·(2·2)/2 = 12;
    # Σ_{c≠k} n_c n_k = 2·12·6 = 144;  α = 1 − 17·12/144 = −0.41666...
    assert q["alpha"] == pytest.approx(1 - 17 * 12 / 144)
    page = client.get("/admin/p/proj", headers=bearer(admin))
    assert page.status_code == 200 and "-0.417" in page.text and "Cohen" in page.text
    # Round trip: `postlab rm` trains on the export as written.
    if not db_url.startswith("sqlite"):
        return  # the training side does not depend on the store
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(client.get("/api/projects/proj/export?votes=all", headers=bearer(admin)).text)
    assert len(load_preferences(prefs)) == 18
    from postlab.train.rm import RMConfig, train

    res = train(RMConfig(model="tiny", out_dir=str(tmp_path / "rm"), data={"train_file": str(prefs), "eval_fraction": 0.0},
                         margin="strength", optim={"max_steps": 2, "batch_size": 4, "bf16": False},
                         checkpoint={"progress": False}))
    assert res["train_pairs"] == 18 and res["steps"] == 2 and (tmp_path / "rm" / "model" / "config.json").is_file()


# --- a real browser ---

def test_browser_rater_labels_with_mouse_and_keys(store, tmp_path, db_url):
    chromium = chromium_executable()
    sync_api = pytest.importorskip("playwright.sync_api")
    make_project(store, tmp_path, n_prompts=2, k=2, extra={(0, 1): XSS})  # 2 pairs
    make_project(store, tmp_path, "more", n_prompts=2, k=2)
    token = add_rater(store, "ann")
    store.add_member("more", "ann")
    admin = store.add_user("root", "admin")
    shots = ARTIFACTS / ("sqlite" if db_url.startswith("sqlite") else "postgresql")
    shots.mkdir(parents=True, exist_ok=True)
    args = CHROMIUM_ARGS
    expected_prefs, expected_edits, expected_flags = set(), set(), set()
    with live_server(store) as base, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(15_000)
        page.goto(f"{base}/p/proj")
        assert page.url.endswith("/login")
        page.fill("#token", "wrong")
        page.click("#login")
        assert page.locator("#login-error").inner_text() == "Unknown token."
        page.goto(f"{base}/login")
        page.fill("#token", token)
        page.click("#login")
        page.click("a[href='/p/proj']")
        page.wait_for_selector("#label-form")
        page.screenshot(path=str(shots / "1-pair-one.png"), full_page=True)

        def texts() -> tuple[str, str]:
            return page.locator("#text-a").inner_text(), page.locator("#text-b").inner_text()

        def prompt_id() -> str:
            return "q" + page.locator("#prompt .text").first.inner_text().split()[1].rstrip("?")

        # Pair 1, mouse: B much better, flag A factually wrong. The XSS text (if shown) is inert text.
        left, right = texts()
        assert XSS in (left, right) and page.evaluate("window.__xss") is None
        assert page.locator("#response-a b, #response-b b").count() == 0
        pid = prompt_id()
        page.click("#choice-b")
        page.click("#strength-3")
        page.click("#flag-a-factual")
        with page.expect_navigation():
            page.click("#submit")
        expected_prefs.add((pid, right, left, "much better"))
        expected_flags.add((pid, left, "factual"))
        # Pair 2, keyboard: A slightly better, edit it, flag B wrong language, submit with Enter.
        page.wait_for_selector("#label-form")
        left, right = texts()
        pid = prompt_id()
        page.keyboard.press("a")
        page.keyboard.press("1")
        page.keyboard.press("e")
        assert page.locator("#edit").is_visible() and page.locator("#edit").input_value() == left
        page.locator("#edit").fill(left + " Edited: <i>kept as text</i>.")
        page.keyboard.press("Escape")
        page.keyboard.press("Shift+L")
        page.screenshot(path=str(shots / "2-pair-two-edited.png"), full_page=True)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expected_prefs.add((pid, left, right, "slightly better"))
        expected_edits.add((pid, left + " Edited: <i>kept as text</i>."))
        expected_flags.add((pid, right, "language"))
        page.wait_for_selector("#done")
        page.screenshot(path=str(shots / "3-done.png"), full_page=True)
        # Project two by keyboard only: a tie (t, Enter) and a skip (s).
        page.goto(f"{base}/p/more")
        page.keyboard.press("t")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_selector("#label-form")
        assert "1 labelled" in page.locator("#progress").inner_text()
        with page.expect_navigation():
            page.keyboard.press("s")
        page.wait_for_selector("#done")
        assert "1 labelled, 1 skipped" in page.locator("#done").inner_text()
        page.goto(f"{base}/admin")
        assert "Error 403" in page.content()  # a rater is no admin
        admin_page = browser.new_page()
        admin_page.goto(f"{base}/login")
        admin_page.fill("#token", admin)
        admin_page.click("#login")
        admin_page.goto(f"{base}/admin/p/proj")
        assert admin_page.locator("#raters td").first.inner_text() == "ann"
        admin_page.screenshot(path=str(shots / "4-admin.png"), full_page=True)
        browser.close()
    from postlab.labelapp import export

    prefs = export.preferences(store, "proj", "all")
    assert {(r["prompt_id"], r["chosen"][0]["content"], r["rejected"][0]["content"], r["strength"]) for r in prefs} \
        == expected_prefs and len(prefs) == 2 and {r["rater_id"] for r in prefs} == {"ann"}
    assert {(r["prompt_id"], r["messages"][-1]["content"]) for r in export.edits(store, "proj")} == expected_edits
    assert {(r["prompt_id"], r["response"], r["flag"]) for r in export.flags(store, "proj")} == expected_flags
    assert export.preferences(store, "more", "all") == []  # a tie is no pair, a skip no label
    statuses = Counter(v["status"] for v in store.labels("more", store.user_by_token(admin)))
    assert statuses == {"submitted": 1, "discarded": 1}
