"""Sweeps: a search over hyperparameters (app.sweeps) queued as ordinary jobs that carry its id."""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from sqlalchemy import func, tuple_
from sqlmodel import Session, col, select

from app import queue, sweeps
from app.db import read_session
from app.deps import EngineDep, KnownQueryRoute, PrincipalDep, SessionDep
from app.models import Job, JobStatus, Sweep
from app.routes.serialized import serialized
from app.schemas import TOO_LARGE, ErrorMessage, SweepJobPublic, SweepPage, SweepPublic, SweepSummary
from app.security import Principal

router = APIRouter(route_class=KnownQueryRoute, prefix="/sweeps", tags=["sweeps"])

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
SWEEP_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "No such sweep (or another owner's)."}
}


def find_sweep(session: Session, sweep_id: str, principal: Principal) -> Sweep:
    """The sweep, or 404 when it does not exist or belongs to another owner (never 403)."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None or not (principal.sees_all or sweep.owner == principal.owner):
        raise HTTPException(status_code=404, detail=f"sweep {sweep_id[:64]!r} not found")
    return sweep


def get_sweep_row(sweep_id: str, session: SessionDep, principal: PrincipalDep) -> Sweep:
    return find_sweep(session, sweep_id, principal)


SweepDep = Annotated[Sweep, Depends(get_sweep_row)]


@router.post(
    "",
    status_code=201,
    response_model=SweepPublic,
    responses={
        422: {
            "description": "Invalid body, too many jobs, or a combination that is not a valid job "
            "(the entry's `combination` and `errors` say which and why); nothing is queued."
        },
        **TOO_LARGE,
    },
)
def create_sweep(
    sweep_in: sweeps.SweepCreate,
    principal: PrincipalDep,
    engine: EngineDep,
    session: SessionDep,
) -> Response:
    """Expand the search space into jobs, validate every one, and queue them all in one transaction."""
    seed = sweep_in.seed if sweep_in.seed is not None else sweeps.new_seed()
    try:
        trials = sweeps.expand(sweep_in, seed=seed)
    except sweeps.InvalidCombination as exc:
        detail = {
            "type": "invalid_combination",
            "loc": ["body", "parameters"],
            "msg": str(exc),
            "combination": exc.assignment,
            "number": exc.number,
            "errors": exc.errors,
        }
        raise HTTPException(status_code=422, detail=[detail]) from exc
    _check_init_from(session, trials, principal)
    space: dict[str, Any] = {
        "parameters": {
            name: p.model_dump(mode="json", exclude_unset=True) for name, p in sweep_in.parameters.items()
        }
    }
    if sweep_in.method == "random":
        space.update(trials=sweep_in.trials, seed=seed)
    sweep = Sweep(
        owner=principal.owner,
        name=sweep_in.name,
        method=sweep_in.method,
        base=sweep_in.base,
        space=space,
        max_parallel=sweep_in.max_parallel,
    )
    queue.create_sweep(engine, sweep=sweep, jobs=[trial.job for trial in trials])
    with read_session(engine) as fresh:  # SQLite: `session` may hold a snapshot from before the insert
        public = _public(fresh, sweep)
    return serialized(public, status_code=201, headers={"Location": f"/sweeps/{sweep.id}"})


def _check_init_from(session: Session, trials: list[sweeps.Trial], principal: Principal) -> None:
    """As POST /jobs: an init_from must name a checkpoint this caller may start from."""
    for trial in trials:
        init_from = trial.job.hyperparameters.init_from
        if init_from is None:
            continue
        problem = queue.init_from_problem(
            session, init_from, owner=None if principal.sees_all else principal.owner
        )
        if problem is not None:
            msg = f"combination #{trial.number} ({sweeps.describe(trial.assignment)}): {problem}"
            loc = ["body", "base", "hyperparameters", "init_from"]
            raise HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


@router.get("", response_model=SweepPage)
def list_sweeps(
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> Response:
    """The caller's sweeps (an admin's: everyone's), newest first, with their jobs' counts."""
    query = select(Sweep)
    if not principal.sees_all:
        query = query.where(Sweep.owner == principal.owner)
    if cursor is not None:
        created_at, sweep_id = _decode_cursor(cursor)
        query = query.where(tuple_(col(Sweep.created_at), col(Sweep.id)) < tuple_(created_at, sweep_id))
    rows = session.exec(
        query.order_by(col(Sweep.created_at).desc(), col(Sweep.id).desc()).limit(limit + 1)
    ).all()
    page = rows[:limit]
    counts: dict[str, Counter[JobStatus]] = {sweep.id: Counter() for sweep in page}
    best: dict[str, float | None] = {}
    if page:
        grouped = session.exec(
            select(Job.sweep_id, Job.status, func.count(), func.max(Job.best_val_accuracy))
            .where(col(Job.sweep_id).in_(list(counts)))
            .group_by(col(Job.sweep_id), col(Job.status))
        ).all()
        for of_sweep, status, count, top in grouped:
            assert of_sweep is not None
            counts[of_sweep][JobStatus(status)] = count
            if top is not None and (best.get(of_sweep) is None or top > (best[of_sweep] or 0.0)):
                best[of_sweep] = top
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    items = [_summary(sweep, counts[sweep.id], best.get(sweep.id)) for sweep in page]
    return serialized(SweepPage(items=items, next_cursor=next_cursor))


@router.get("/{sweep_id}", response_model=SweepPublic, responses=SWEEP_NOT_FOUND)
def get_sweep(sweep: SweepDep, session: SessionDep) -> Response:
    return serialized(_public(session, sweep))


@router.post("/{sweep_id}/cancel", response_model=SweepPublic, responses=SWEEP_NOT_FOUND)
def cancel_sweep(sweep: SweepDep, engine: EngineDep) -> Response:
    """Cancel the sweep's queued and running jobs (running ones stop within seconds); those that
    ended stay as they are. Cancelling a sweep with nothing left to cancel is not an error."""
    queue.cancel_sweep(engine, sweep_id=sweep.id)
    with read_session(engine) as fresh:  # SQLite: SweepDep's session reads from before the cancels
        return serialized(_public(fresh, sweep))


def _public(session: Session, sweep: Sweep) -> SweepPublic:
    varied = varied_names(sweep)
    jobs = session.exec(
        select(Job)
        .where(Job.sweep_id == sweep.id)
        # Best first, jobs without a metric last; then in the sweep's own order.
        .order_by(
            col(Job.best_val_accuracy).is_(None),
            col(Job.best_val_accuracy).desc(),
            col(Job.created_at),
            col(Job.id),
        )
    ).all()
    ranked = [
        SweepJobPublic(
            id=job.id,
            name=job.name,
            status=job.status,
            best_val_accuracy=job.best_val_accuracy,
            current_epoch=job.current_epoch,
            parameters={name: job.hyperparameters.get(name) for name in varied},
        )
        for job in jobs
    ]
    counts = Counter(job.status for job in jobs)
    best = ranked[0].best_val_accuracy if ranked else None
    return SweepPublic(**_summary(sweep, counts, best).model_dump(), jobs=ranked)


def _summary(sweep: Sweep, counts: Counter[JobStatus], best: float | None) -> SweepSummary:
    return SweepSummary(
        id=sweep.id,
        name=sweep.name,
        owner=sweep.owner,
        method=sweep.method,
        base=sweep.base,
        space=sweep.space,
        max_parallel=sweep.max_parallel,
        created_at=sweep.created_at,
        varied=varied_names(sweep),
        counts={status: counts.get(status, 0) for status in JobStatus},
        best_val_accuracy=best,
    )


def varied_names(sweep: Sweep) -> list[str]:
    """The space's parameters that take more than one value (a range, or several values)."""
    parameters: dict[str, dict[str, Any]] = sweep.space.get("parameters", {})
    return [name for name, spec in parameters.items() if "min" in spec or len(spec.get("values", [])) > 1]


def _encode_cursor(sweep: Sweep) -> str:
    raw = f"{sweep.created_at.isoformat()}|{sweep.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, sweep_id = raw.split("|", 1)
        return datetime.fromisoformat(created_at), sweep_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        detail = [
            {
                "loc": ["query", "cursor"],
                "msg": "cursor is not valid: pass next_cursor from a previous page unchanged",
                "type": "value_error",
            }
        ]
        raise HTTPException(status_code=422, detail=detail) from exc
