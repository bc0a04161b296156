"""The labeling web app (FastAPI): server-rendered pages for raters and admins, and a JSON API.

Auth: every request except the login page and static files carries a token as
``Authorization: Bearer <token>`` (API clients), or the HttpOnly cookie the login form sets. The cookie
holds the id of a server-side session, never the token: logging out deletes the session, so a copied
cookie stops working too. Cookie-authenticated POSTs also need the CSRF token (form field ``csrf`` or
header ``X-CSRF-Token``): an HMAC of the session id, so a page on another site cannot forge one. Templates autoescape
everything (model outputs may contain markup) and the Content-Security-Policy allows only our own
script file; every response carries the security headers, error pages (500s included) too. Bodies
over ``max_body_bytes`` are refused (413) as soon as that is known, before auth reads the token, and
every error (HTTP-level ones like bad form encoding included) is answered in the app's own format:
``{"error": {"message", "type", "field"}}`` under /api/, the error page elsewhere. A database that stays
locked past the store's busy timeout is a 503 with ``Retry-After`` in the same format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from postlab.labelapp import export
from postlab.labelapp.models import FLAG_KINDS, STRENGTHS, User
from postlab.labelapp.store import MAX_ID, Forbidden, LabelAppError, LabelInput, Store, is_busy

log = logging.getLogger("postlab.labelapp")
HERE = Path(__file__).parent
COOKIE = "postlab_session"  # a login session's id (the token itself never goes into a cookie)
LEGACY_COOKIE = "postlab_token"  # held the token itself before sessions existed; removed at login and logout
LOGIN_CSRF_COOKIE = "postlab_login_csrf"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
# The longest legitimate body: an edit of 100,000 characters, each up to 12 bytes form-encoded (%XX x 4).
MAX_BODY_BYTES = 2 * 1024 * 1024
RETRY_AFTER_S = 2  # what a 503 for a busy database tells clients to wait
LabelId = Annotated[int, PathParam(ge=1, le=MAX_ID)]  # SQLite and PostgreSQL ids are signed 64-bit


class NotLoggedIn(LabelAppError):
    status = 401


class LabelBody(BaseModel):
    """POST /api/labels/{id}: the answer in the order shown (a = left)."""

    model_config = ConfigDict(extra="forbid")
    choice: Literal["a", "b", "tie"]
    strength: Literal["slightly better", "better", "much better"] | None = None
    edit: str | None = None
    flags: dict[Literal["a", "b"], list[Literal["unsafe", "factual", "language"]]] = {}


class BodyTooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body too large: at most {limit} bytes")


class BodyLimit:
    """Refuses a request body over ``limit`` bytes as it is read: at once when Content-Length says so,
    else as soon as the bytes received pass it. The error is raised inside the route, so the app's own
    handlers answer it."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.limit:
                raise BodyTooLarge(self.limit)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def csrf_token(token: str) -> str:
    return hmac.new(token.encode(), b"postlab-labelapp-csrf", hashlib.sha256).hexdigest()


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(store: Store, *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="postlab label-app", docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    templates = Jinja2Templates(env=env)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _install_handlers(app, templates)
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        return _secure(await call_next(request))

    async def current_user(request: Request) -> User:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            user = await run_in_threadpool(store.user_by_token, token) if token else None  # off the loop: may wait on the DB
            if user is None:
                raise NotLoggedIn("unknown or revoked token")
            return user
        session_id = request.cookies.get(COOKIE, "")
        if not session_id:
            raise NotLoggedIn("a token is required: log in at /login or send 'Authorization: Bearer <token>'")
        user = await run_in_threadpool(store.user_by_session, session_id)
        if user is None:
            raise NotLoggedIn("your session ended (logged out, expired or revoked): log in again at /login")
        if request.method not in ("GET", "HEAD"):
            await _check_csrf(request, session_id)
        return user

    def page(request: Request, name: str, status: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("csrf", _csrf_of(request))
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    _add_login_routes(app, store, page)
    _add_rater_pages(app, store, page, current_user)
    _add_admin_pages(app, store, page, current_user)
    _add_api(app, store, current_user)
    return app


async def _check_csrf(request: Request, session_id: str) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded",
                                                                             "multipart/form-data")):
        sent = (await request.form()).get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(session_id)):
        raise Forbidden("csrf: missing or wrong CSRF token (reload the page)", "csrf")


def _install_handlers(app: FastAPI, templates: Jinja2Templates) -> None:
    def error(request: Request, status: int, message: str, kind: str, field: str | None,
              headers: dict[str, str] | None = None) -> Response:
        # Secured here too: a 500 is answered outside the middleware that adds the headers.
        if status == 401 and not _is_api(request) and request.method == "GET":
            return _secure(RedirectResponse("/login", status_code=303))
        if _is_api(request):
            response = JSONResponse({"error": {"message": message, "type": kind, "field": field}}, status_code=status)
        else:
            response = templates.TemplateResponse(request, "error.html", {"status": status, "message": message},
                                                  status_code=status)
        response.headers.update(headers or {})
        return _secure(response)

    @app.exception_handler(LabelAppError)
    async def app_error(request: Request, exc: LabelAppError):
        return error(request, exc.status, str(exc), type(exc).__name__, exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if part not in ("body", "path", "query")) or "body"
        return error(request, 422, f"{field}: {first['msg']}", "ValidationError", field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # Starlette's own refusals: unknown routes, methods, malformed or over-long form data, body size.
        message = str(exc.detail)
        if isinstance(exc.__cause__, UnicodeDecodeError):
            message = f"body: not valid UTF-8 ({exc.__cause__.reason} at byte {exc.__cause__.start})"
        return error(request, exc.status_code, message, "HTTPError", None)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError):
        if is_busy(exc):  # locked elsewhere past the busy timeout: nothing was written, the client may retry
            log.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
            return error(request, 503, f"the database is busy (locked by another process); nothing was saved, "
                                       f"try again in {RETRY_AFTER_S} seconds", "DatabaseBusy", None,
                         {"Retry-After": str(RETRY_AFTER_S)})
        return await unexpected(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error(request, 500, f"internal error ({type(exc).__name__}); the server log has the details",
                     "InternalError", None)


def _add_login_routes(app: FastAPI, store: Store, page) -> None:
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        nonce = secrets.token_urlsafe(16)
        response = page(request, "login.html", csrf=nonce)
        response.set_cookie(LOGIN_CSRF_COOKIE, nonce, httponly=True, samesite="strict")
        return response

    @app.post("/login")
    def login(request: Request, token: str = Form(...), csrf: str = Form(...)):
        if not hmac.compare_digest(csrf, request.cookies.get(LOGIN_CSRF_COOKIE, "")):
            raise Forbidden("csrf: the login form expired; reload /login", "csrf")
        session_id = store.open_session(token.strip())
        if session_id is None:
            return page(request, "login.html", status=401, csrf=csrf, error="Unknown token.")
        if previous := request.cookies.get(COOKIE):  # logging in again ends the session this browser had
            store.close_session(previous)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="strict")
        response.delete_cookie(LEGACY_COOKIE)
        response.delete_cookie(LOGIN_CSRF_COOKIE)
        return response


def _add_rater_pages(app: FastAPI, store: Store, page, current_user) -> None:
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: User = Depends(current_user)):
        projects = [(p.name, store.progress(p.name, user)) for p in store.projects_for(user)]
        return page(request, "home.html", user=user, projects=projects)

    @app.post("/logout")
    def logout(request: Request, user: User = Depends(current_user)):
        if session_id := request.cookies.get(COOKIE):
            store.close_session(session_id)  # on the server: a copy of the cookie is worthless from now on
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        response.delete_cookie(LEGACY_COOKIE)
        return response

    @app.get("/p/{project}", response_class=HTMLResponse)
    def rate(request: Request, project: str, user: User = Depends(current_user)):
        if not store.rates_in(project, user):  # an admin looking, not rating: no assignment is taken
            return RedirectResponse(f"/admin/p/{project}", status_code=303)
        progress = store.progress(project, user)
        summary = store.project_summary(project)
        nxt = store.next_label(project, user)
        if nxt is None:
            return page(request, "done.html", user=user, project=project, progress=progress)
        label, pair = nxt
        left, right = (pair.response_b, pair.response_a) if label.swapped else (pair.response_a, pair.response_b)
        return page(request, "rate.html", user=user, project=project, progress=progress, label_id=label.id,
                    prompt=json.loads(pair.prompt_json), left=left, right=right,
                    strengths=STRENGTHS, flag_kinds=FLAG_KINDS, instructions=summary["instructions"])

    @app.post("/p/{project}/labels/{label_id}")
    def answer(project: str, label_id: LabelId, action: Literal["submit", "skip"] = Form("submit"),
               choice: str | None = Form(None), strength: str | None = Form(None), edit: str | None = Form(None),
               flag_a: list[str] = Form([]), flag_b: list[str] = Form([]), user: User = Depends(current_user)):
        if action == "skip":
            store.skip(label_id, user)
        else:
            if choice is None:
                raise LabelAppError("choice: pick A, B or tie", "choice")
            store.submit(label_id, user, LabelInput(choice=choice, strength=strength, edit=edit,
                                                    flags={"a": flag_a, "b": flag_b}))
        return RedirectResponse(f"/p/{project}", status_code=303)


def _csrf_of(request: Request) -> str:
    return csrf_token(request.cookies.get(COOKIE, ""))


def _require_admin(user: User) -> None:
    if user.role != "admin":
        raise Forbidden("admins only")


def _add_admin_pages(app: FastAPI, store: Store, page, current_user) -> None:
    @app.get("/admin", response_class=HTMLResponse)
    def admin_home(request: Request, user: User = Depends(current_user)):
        _require_admin(user)
        summaries = [store.project_summary(p.name) for p in store.projects_for(user)]
        return page(request, "admin.html", user=user, summaries=summaries)

    @app.get("/admin/p/{project}", response_class=HTMLResponse)
    def admin_project(request: Request, project: str, user: User = Depends(current_user)):
        _require_admin(user)
        return page(request, "admin_project.html", user=user, summary=store.project_summary(project),
                    quality=export.quality(store, project))


def _add_api(app: FastAPI, store: Store, current_user) -> None:
    @app.get("/api/me")
    def me(user: User = Depends(current_user)):
        return {"name": user.name, "role": user.role}

    @app.get("/api/projects")
    def projects(user: User = Depends(current_user)):
        return [{"name": p.name, "overlap": p.overlap} for p in store.projects_for(user)]

    @app.post("/api/projects/{project}/next")
    def next_pair(project: str, user: User = Depends(current_user)):
        nxt = store.next_label(project, user)
        if nxt is None:
            return Response(status_code=204)
        label, pair = nxt
        left, right = (pair.response_b, pair.response_a) if label.swapped else (pair.response_a, pair.response_b)
        return {"label_id": label.id, "prompt": json.loads(pair.prompt_json), "response_a": left, "response_b": right}

    @app.post("/api/labels/{label_id}")
    def submit(label_id: LabelId, body: LabelBody, user: User = Depends(current_user)):
        flags = {side: list(kinds) for side, kinds in body.flags.items()}
        store.submit(label_id, user, LabelInput(choice=body.choice, strength=body.strength, edit=body.edit, flags=flags))
        return store.label_view(label_id, user)

    @app.post("/api/labels/{label_id}/skip")
    def skip(label_id: LabelId, user: User = Depends(current_user)):
        store.skip(label_id, user)
        return store.label_view(label_id, user)

    @app.get("/api/labels/{label_id}")
    def get_label(label_id: LabelId, user: User = Depends(current_user)):
        return store.label_view(label_id, user)

    @app.get("/api/projects/{project}/labels")
    def labels(project: str, rater: str | None = None, user: User = Depends(current_user)):
        return store.labels(project, user, rater)

    @app.get("/api/projects/{project}/progress")
    def progress(project: str, user: User = Depends(current_user)):
        return store.progress(project, user)

    @app.get("/api/projects/{project}/quality")
    def quality(project: str, user: User = Depends(current_user)):
        _require_admin(user)
        return export.quality(store, project)

    @app.get("/api/projects/{project}/export")
    def export_jsonl(project: str, kind: str = Query("preferences"), votes: str = Query("majority"),
                     user: User = Depends(current_user)):
        _require_admin(user)
        body = export.to_jsonl(export.export_rows(store, project, kind, votes))
        name = f"{project}-{kind}.jsonl"
        return PlainTextResponse(body, media_type="application/jsonl",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})
