"""The FastAPI application: pages, the JSON API, security headers and error handling."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import anyio
from anyio.to_thread import run_sync
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings, get_settings
from app.db import Database
from app.deps import LoginRequired
from app.errors import ServiceError
from app.web.render import render

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
UNSTORABLE_VALUE = (
    "A value in this request cannot be stored: a number is out of range (ids go up to "
    "2147483647) or a text contains a NUL character. Nothing was changed."
)
logger = logging.getLogger(__name__)
STUCK_EXPORTS_SWEEP_SECONDS = 30


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set them itself. Plain ASGI:
    Starlette's BaseHTTPMiddleware would cost a task and a stream per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses request bodies over the limit with 413 and a sentence that says so: at once when
    the declared Content-Length is over it, else when the bytes read so far are."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = (
            f"The request is too large: at most {max_bytes:,} bytes are accepted. "
            "Nothing was changed."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, counting_receive, send)


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    from app.api.jobs import router as jobs_api_router
    from app.api.routes import router as api_router
    from app.web.admin import router as admin_router
    from app.web.audit import router as audit_router
    from app.web.auth import router as auth_router
    from app.web.exports import router as exports_router
    from app.web.hygiene import router as hygiene_router
    from app.web.imports import router as imports_router
    from app.web.jobs import router as jobs_router
    from app.web.labeler import router as labeler_router
    from app.web.quality import router as quality_router
    from app.web.screening import router as screening_router

    settings = settings or get_settings()
    app = FastAPI(
        title="Rankery",
        version="0.1.0",
        description="Human feedback for language models: prompts, demonstrations, rankings.",
        # No Swagger or ReDoc page: FastAPI serves them from a CDN with inline scripts, which
        # the CSP and the no-CDN rule forbid. /openapi.json loads into any OpenAPI viewer.
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.db = db or Database(settings.database_url)

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie="rankery_session",
        max_age=settings.session_max_age_seconds,
        same_site="lax",
        https_only=settings.https_only,
    )

    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SecurityHeaders)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Routes are tried in order, at tens of microseconds each: the labelers' pages and API first.
    app.include_router(labeler_router)
    app.include_router(api_router)
    app.include_router(jobs_api_router)
    app.include_router(auth_router)
    app.include_router(admin_router)
    app.include_router(quality_router)
    app.include_router(hygiene_router)
    app.include_router(imports_router)
    app.include_router(screening_router)
    app.include_router(jobs_router)
    app.include_router(exports_router)
    app.include_router(audit_router)

    @app.get("/healthz", tags=["health"], summary="Liveness and database check")
    def healthz() -> dict[str, str]:
        return _health(app)

    _install_error_handlers(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_sweep_stuck_exports, app)
        yield
        tasks.cancel_scope.cancel()


async def _sweep_stuck_exports(app: FastAPI) -> None:
    """At start and every little while: exports whose process died are failed (their
    heartbeat stopped), so that none shows as running forever."""
    from app.services import exports

    while True:
        try:
            await run_sync(exports.fail_stuck_snapshots, app.state.db, app.state.settings)
        except Exception:
            logger.exception("could not check for stuck exports")
        await anyio.sleep(STUCK_EXPORTS_SWEEP_SECONDS)


def _health(app: FastAPI) -> dict[str, str]:
    from sqlalchemy import text

    with app.state.db.session() as session:
        session.execute(text("SELECT 1"))
    return {"status": "ok"}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = f"/login?next={quote(target)}"
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": location})
        return RedirectResponse(location, status_code=303)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": exc.message}, status_code=exc.status_code)
        return _error_page(request, exc.status_code, exc.message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _is_api(request) or request.url.path in {"/openapi.json", "/healthz"}:
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        return _error_page(request, exc.status_code, str(exc.detail))

    @app.exception_handler(DataError)
    @app.exception_handler(OverflowError)
    async def unstorable_value(request: Request, exc: Exception) -> Response:
        # The database refused a value that passed validation: an id beyond its integer range
        # (PostgreSQL's integer is 32-bit, SQLite's 64-bit) or a NUL character in a text field.
        # The session has rolled back, so nothing was stored.
        logger.info("refused a value the database cannot store: %s", exc)
        if _is_api(request):
            return JSONResponse({"detail": UNSTORABLE_VALUE}, status_code=422)
        return _error_page(request, 422, UNSTORABLE_VALUE)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            return await request_validation_exception_handler(request, exc)
        return _error_page(request, 422, _readable(exc))


def _readable(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "The request is invalid."


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return render(
        request, "error.html", {"status_code": status_code, "message": message}, status_code
    )
