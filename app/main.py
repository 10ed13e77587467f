"""The HTTP service: `uvicorn app.main:app`. Nothing is read or opened at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import housekeeping, queue, telemetry
from app.db import make_engine
from app.integrity import check_artifacts, check_database
from app.job_etags import BodyCache, KnownVersions
from app.middleware import LimitBodySize, RequireApiKey
from app.migrations import upgrade
from app.operation_ids import operation_id
from app.routes import (
    attempts,
    checkpoints,
    dashboard,
    exports,
    health,
    job_changes,
    jobs,
    prometheus,
    sweeps,
    watch,
    workers,
)
from app.schemas import JOB_LOOKUP, UNAUTHORIZED
from app.security import GENERATE_KEY_HINT, Authenticator, is_loopback, uvicorn_bind_host
from app.settings import Settings, get_settings
from app.streams import EventHub
from app.validation_hints import hinted_message

logger = logging.getLogger(__name__)

# How often TRAINQ_RETENTION_DAYS is applied: it counts days, an hour late is on time.
RETENTION_INTERVAL_S = 3600.0


def create_app(settings: Settings | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or get_settings()
        app.state.authenticator = authenticator_for(resolved)
        check_database(url=resolved.database_url)
        engine = make_engine(resolved.database_url)
        upgrade(engine)
        # Before the check: a deleted job's folder left by a crash is not a job the database forgot.
        housekeeping.sweep_deleted_jobs(engine, artifacts_dir=resolved.artifacts_dir)
        app.state.health_body = health.health_body(
            check_artifacts(engine=engine, artifacts_dir=resolved.artifacts_dir)
        )
        app.state.settings = resolved
        app.state.engine = engine
        app.state.known_versions = KnownVersions(resolved.database_url)
        logger.info("serving jobs from %s", engine.url.render_as_string(hide_password=True))
        reaper = asyncio.create_task(_take_back_lost_jobs(engine, interval_s=resolved.lease_seconds / 4))
        background = [reaper]
        if resolved.retention_days is not None:
            background.append(
                asyncio.create_task(
                    _expire_checkpoints(
                        engine, resolved.artifacts_dir, retention_days=resolved.retention_days
                    )
                )
            )
        app.state.event_hub = EventHub(engine)
        event_hub = asyncio.create_task(app.state.event_hub.run())
        queue_metrics = telemetry.QueueCollector(engine)
        app.state.metrics_registry.register(queue_metrics)
        artifacts_metrics = telemetry.ArtifactsCollector(engine, resolved.artifacts_dir)
        app.state.metrics_registry.register(artifacts_metrics)
        _freeze_start_up_objects()
        yield
        app.state.metrics_registry.unregister(artifacts_metrics)
        app.state.metrics_registry.unregister(queue_metrics)
        for task in background:
            task.cancel()
        event_hub.cancel()
        app.state.known_versions.close()
        engine.dispose()

    app = FastAPI(
        title="trainq",
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(400, _unreadable_body)
    # One registry per app: apps created side by side (tests) keep their series apart.
    app.state.metrics_registry = CollectorRegistry()
    app.state.body_cache = BodyCache()
    app.state.database_check = health.DatabaseCheck()
    # The last added runs first: keys (or without keys, the peer) are checked before anything else
    # (a refused request is not counted), then requests are counted (a 413 too), then the body is
    # read, up to its limit, before any route runs.
    app.add_middleware(LimitBodySize)
    app.add_middleware(telemetry.RecordRequests, metrics=telemetry.HttpMetrics(app.state.metrics_registry))
    app.add_middleware(RequireApiKey)
    health.add_route(app)
    app.include_router(jobs.router, responses=UNAUTHORIZED)
    app.include_router(job_changes.router, responses=UNAUTHORIZED)
    app.include_router(sweeps.router, responses=UNAUTHORIZED)
    app.include_router(watch.router, responses=UNAUTHORIZED)
    app.include_router(checkpoints.router, responses={**UNAUTHORIZED, **JOB_LOOKUP})
    app.include_router(exports.router, responses={**UNAUTHORIZED, **JOB_LOOKUP})
    app.include_router(prometheus.router, responses=UNAUTHORIZED)
    app.include_router(attempts.router, responses=UNAUTHORIZED)
    app.include_router(workers.router, responses=UNAUTHORIZED)
    app.include_router(dashboard.router)
    app.mount(dashboard.ASSETS_PATH, dashboard.assets(), name="dashboard-assets")
    return app


def _freeze_start_up_objects() -> None:
    """Once per process, after start-up: what it made (modules, routes, schemas, the engine) lives
    as long as the process, and the garbage collector's full passes stop walking it. Each walked
    ~150,000 objects in 60-100 ms, every request waiting, a few times a minute under load
    (BENCHMARKS.md). Once: a second app in the process (tests) must not freeze the first's garbage."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def authenticator_for(settings: Settings) -> Authenticator | None:
    """None (anonymous) without keys. Then RequireApiKey answers only this machine's requests
    (unless anonymous access is explicitly allowed); this refuses early, with a clear message,
    the public addresses that uvicorn's arguments show."""
    keys = settings.api_key_owners()
    if keys:
        logger.info("API keys required (%d owners)", len(set(keys.values())))
        return Authenticator(keys)
    if settings.allow_anonymous:
        logger.warning(
            "serving WITHOUT API keys to every address (TRAINQ_ALLOW_ANONYMOUS=true): anyone who reaches "
            "it can train"
        )
        return None
    host = uvicorn_bind_host(environ=os.environ)
    if host is None or is_loopback(host):
        logger.info("no API keys: answering only requests from this machine")
        return None
    raise RuntimeError(
        f"refusing to serve {host} without API keys: anyone who can reach it could run jobs. "
        "Set TRAINQ_API_KEYS='owner:key' (or TRAINQ_API_KEYS_FILE), "
        f"{GENERATE_KEY_HINT}; or bind to 127.0.0.1; or set TRAINQ_ALLOW_ANONYMOUS=true to accept the risk"
    )


async def _take_back_lost_jobs(engine: Engine, *, interval_s: float) -> None:
    """Jobs whose worker died go back to the queue even while no other worker runs."""
    while True:
        try:
            await asyncio.to_thread(queue.requeue_expired, engine)
        except SQLAlchemyError:
            logger.exception("could not take back expired jobs; trying again")
        await asyncio.sleep(interval_s)


async def _expire_checkpoints(engine: Engine, artifacts_dir: Path, *, retention_days: float) -> None:
    """TRAINQ_RETENTION_DAYS, at start-up and every RETENTION_INTERVAL_S. Here rather than in the
    workers: the API holds every job's files (workers on other hosts share no folder with it)."""
    while True:
        try:
            report = await asyncio.to_thread(
                housekeeping.expire_checkpoints,
                engine,
                artifacts_dir=artifacts_dir,
                retention_days=retention_days,
            )
            if report.jobs:
                logger.info(
                    "retention (%g days): removed %d checkpoint files (%d bytes) of %d jobs",
                    retention_days,
                    report.files,
                    report.bytes,
                    report.jobs,
                )
        except Exception:  # a database or disk error: the next round tries again, the loop never dies
            logger.exception(
                "could not remove expired checkpoints; trying again in %g s", RETENTION_INTERVAL_S
            )
        await asyncio.sleep(RETENTION_INTERVAL_S)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    # The offending input is not echoed back: it may be huge, secret, or NaN (not JSON).
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e["loc"]), "msg": hinted_message(e["loc"], e["type"], e["msg"]), "type": e["type"]}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail}))


async def _unreadable_body(request: Request, exc: Exception) -> Response:
    # FastAPI answers 400 to a JSON body that fails to decode for any reason but its syntax;
    # a bad body is a 422 like every other, saying what to change.
    assert isinstance(exc, StarletteHTTPException)
    problem = _json_problem(exc.__cause__)
    if problem is None:
        return await http_exception_handler(request, exc)
    detail = [{"loc": ["body"], "msg": problem, "type": "json_invalid"}]
    return JSONResponse(status_code=422, content={"detail": detail})


def _json_problem(cause: BaseException | None) -> str | None:
    """What made json.loads fail, for the errors that FastAPI does not report as a syntax error."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the body is not valid {cause.encoding} at byte {cause.start} ({cause.reason}): send UTF-8 JSON"
        )
    if isinstance(cause, RecursionError):
        return "the body nests arrays or objects too deeply"
    if isinstance(cause, ValueError):
        # Python refuses to convert longer integers (CVE-2020-10735); no field takes one anyway.
        return f"a number in the body has more than {sys.get_int_max_str_digits()} digits"
    return None


app = create_app()
