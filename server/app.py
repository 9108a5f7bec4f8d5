"""Builds the Loket FastAPI app from Settings. The one place ports meet adapters.

With no settings: SQLite under data_dir, in-process Router, LiveState and floor. With
LOKET_REDIS_URL the Redis adapters and the cluster floor (a leader elected among the
processes) take their place, here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from reading.pool import PoolConfig, ReadingPool
from server.adapters.blobs import BlobStore
from server.adapters.directory import CircuitBreaker, HttpMemberDirectory, LocalMemberDirectory
from server.adapters.local import LocalLiveState, LocalRouter
from server.adapters.redis.wiring import open_cluster
from server.adapters.sql import migrate
from server.adapters.sql.records import SqlRecordStore
from server.adapters.sql.wiring import open_accounts
from server.analysis import DocumentAnalyst, Notify
from server.api import auth as auth_api
from server.api import front as front_api
from server.api import health, ws
from server.api import recordings as recordings_api
from server.api import records as records_api
from server.api import uploads as uploads_api
from server.api import verification as verification_api
from server.api.connection import CloseCode, Connection
from server.api.errors import install_error_handlers
from server.api.records import install_records_errors
from server.auth.ratelimit import LoginThrottle
from server.auth.secrets import load_or_create_jwt_secret
from server.auth.service import AuthService
from server.auth.tokens import TokenIssuer
from server.floor import FloorRuntime
from server.metrics import Metrics
from server.ports.directory import MemberDirectory
from server.ports.floor import Floor
from server.ports.live_state import LiveSession, LiveState
from server.ports.router import FLOOR_TOPICS, Mailbox, Router
from server.records import RecordsService, documents_key
from server.settings import Settings
from server.workbench import Workbench
from signaling.schema import protocol_schema

log = structlog.get_logger("loket.app")

WEB_CSO_DIR = Path(__file__).resolve().parent.parent / "web_cso"
WEB_SUPERVISOR_DIR = Path(__file__).resolve().parent.parent / "web_supervisor"


def _close_replaced(mailbox: Mailbox) -> None:
    # The peer connected again through another process: this socket is the stale one.
    if isinstance(mailbox, Connection):
        mailbox.close(CloseCode.REPLACED, "replaced by a newer connection")


def _close_evicted(mailboxes: list[Mailbox]) -> None:
    # The floor counted this process as gone: reconnect (and resume) to be known again.
    for mailbox in mailboxes:
        if isinstance(mailbox, Connection):
            mailbox.close(CloseCode.SERVICE_RESTART, "reconnect: this server was cut off")


def open_directory(settings: Settings, store: SqlRecordStore) -> MemberDirectory:
    """The agency's membership service when LOKET_DIRECTORY_URL is set, else the
    membership table the imports fill."""
    if settings.directory_url is None:
        return LocalMemberDirectory(store)
    token = settings.directory_token.get_secret_value() if settings.directory_token else None
    return HttpMemberDirectory(
        settings.directory_url, timeout=settings.directory_timeout,
        retries=settings.directory_retries, backoff=settings.directory_backoff,
        breaker=CircuitBreaker(settings.directory_failures, settings.directory_open_seconds),
        token=token,
    )  # fmt: skip


def open_analyst(
    settings: Settings, store: SqlRecordStore, blobs: BlobStore, notify: Notify
) -> DocumentAnalyst:
    """One reading pool and one face runner per process, as the settings size them."""
    pool = None
    if settings.reading_workers:
        pool = ReadingPool(PoolConfig(workers=settings.reading_workers,
                                      queue=settings.reading_queue,
                                      timeout=settings.reading_timeout))  # fmt: skip
    faces = None
    if settings.face_workers:
        from faces.runner import FaceRunner  # onnxruntime is loaded only when faces are on

        faces = FaceRunner(workers=settings.face_workers, queue=settings.face_queue,
                           timeout_s=settings.face_timeout)  # fmt: skip
    bound = settings.reading_workers + settings.reading_queue
    bound += settings.face_workers + settings.face_queue
    return DocumentAnalyst(store, blobs, notify, pool=pool, faces=faces, max_pending=bound + 4)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.database_url is None:
            # Embedded default: nobody else shares this file, so bring it up to date.
            await migrate.upgrade(settings)
        else:
            await migrate.check_schema_current(settings)
        engine, accounts = await open_accounts(settings)
        issuer = TokenIssuer(
            load_or_create_jwt_secret(settings),
            access_ttl=settings.access_token_ttl,
            refresh_ttl=settings.refresh_token_ttl,
        )
        auth = AuthService(accounts, issuer, LoginThrottle.from_settings(settings), settings)
        cluster = await open_cluster(
            settings,
            load_or_create_jwt_secret(settings),
            on_replaced=_close_replaced,
            on_evicted=_close_evicted,
        )
        router: Router
        live: LiveState
        if cluster is not None:
            router, live = cluster.router, cluster.live
        else:
            router, live = LocalRouter(), LocalLiveState()
        blobs = BlobStore(settings.data_dir / "documents", documents_key(settings))
        store = SqlRecordStore(engine)
        # The records service asks the floor which session serves a claim (its access
        # decisions follow the session's state); the floor asks records to resolve the
        # claim of a check-in it accepted. Late binding ties the two.
        floor_ref: list[Floor] = []

        async def session_of_claim(claim_id: str) -> LiveSession | None:
            return await floor_ref[0].session_of_claim(claim_id)

        directory = open_directory(settings, store)
        records = RecordsService(
            settings, store, blobs, session_of_claim=session_of_claim, directory=directory
        )

        async def advice_ready(claim_id: str, document_id: str, what: str) -> None:
            await floor_ref[0].verification_ready(claim_id, document_id, what)

        analyst = open_analyst(settings, store, blobs, advice_ready)
        front = front_api.open_front(settings, engine, records, load_or_create_jwt_secret(settings))
        recordings = recordings_api.open_recordings(settings, engine, records, metrics)
        runtime_kw = {
            **front.runtime_kw,  # tickets' claims and visit events (front of house)
            "resolve_claim": ws.claim_resolver(records),
            "write_audit": ws.audit_writer(records),
            "broadcast_interval": settings.broadcast_interval,
        }
        floor: Floor
        if cluster is not None:
            floor = cluster.floor(metrics, runtime_kw)
            await cluster.router.start(topics=(FLOOR_TOPICS,))
        else:
            secret = load_or_create_jwt_secret(settings)
            floor = FloorRuntime.from_settings(
                settings, router, live, metrics, secret, **runtime_kw
            )
        floor_ref.append(floor)
        front.attach(app, floor, router, metrics)
        await floor.start()
        await analyst.start()  # the reading workers load their models in the background

        async def readiness() -> list[str]:
            problems = []
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            except Exception as exc:
                problems.append(f"database unreachable: {type(exc).__name__}")
            if cluster is not None:
                try:
                    await cluster.redis.ping()
                except Exception as exc:
                    problems.append(f"redis unreachable: {type(exc).__name__}")
            return problems

        app.state.auth = auth
        app.state.floor = floor
        app.state.records = records
        app.state.recordings = recordings
        recordings.start()  # its /metrics gauges
        app.state.analyst = analyst
        app.state.workbench = Workbench(
            records, reading=analyst.pool is not None, faces=analyst.faces is not None
        )
        app.state.readiness = readiness
        app.state.sockets = ws.SocketServices(settings, auth, floor, router, metrics, records)
        account_watch = asyncio.create_task(ws.watch_accounts(app.state.sockets))
        log.info(
            "loket_started",
            data_dir=str(settings.data_dir.resolve()),
            cluster=cluster.process_id if cluster else None,
        )
        try:
            yield
        finally:
            account_watch.cancel()
            await analyst.close()
            await directory.close()
            await floor.stop()
            if cluster is not None:
                await cluster.close()
            auth.close()
            await front.close()
            await recordings.close()
            await store.close()
            await engine.dispose()

    app = FastAPI(
        title="Loket",
        summary="Real-time one-to-many video booth orchestrator",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    install_records_errors(app)
    app.include_router(health.router)
    app.include_router(auth_api.router)
    app.include_router(ws.router)
    app.include_router(records_api.router)
    app.include_router(uploads_api.router)
    front_api.install(app)
    recordings_api.install(app)
    app.include_router(verification_api.router)

    @app.get("/api/schema", tags=["protocol"], summary="JSON Schema of every socket message")
    async def schema() -> JSONResponse:
        return JSONResponse(protocol_schema())

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    if WEB_CSO_DIR.is_dir():
        app.mount("/console", StaticFiles(directory=WEB_CSO_DIR, html=True), name="console")
    if WEB_SUPERVISOR_DIR.is_dir():
        app.mount(
            "/supervisor",
            StaticFiles(directory=WEB_SUPERVISOR_DIR, html=True),
            name="supervisor",
        )
    return app
