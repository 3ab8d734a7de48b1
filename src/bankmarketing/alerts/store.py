"""The receiver's state in the platform database: alert events, retrainings, and one decision lock.

Every decision for a firing alert (duplicate, in flight, cooldown, start) is taken inside one
transaction that holds a database-wide lock — a Postgres transaction-level advisory lock, or
SQLite's write lock taken up front by `BEGIN IMMEDIATE` — so gunicorn workers and concurrent
requests see each other's claims. The unique constraint on (fingerprint, starts_at) backs it up.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bankmarketing.database import alert_event, engine_for, retraining

#: Statuses the retrain pipeline reports through `mark_retraining`.
RETRAINING_STATUSES = ("running", "succeeded", "failed")
#: A retraining in these states blocks another one (until RETRAIN_MAX_RUNTIME_SECONDS).
IN_FLIGHT = ("triggering", "triggered", "running")
#: The trigger never reached Mage: the alert may try again, and no cooldown starts.
TRIGGER_FAILED = "trigger_failed"
#: Any constant: the Postgres advisory lock of the receiver's decisions.
_DECISION_LOCK = 0x616C657274


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


@lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    """The platform engine; on SQLite one whose transactions start with BEGIN IMMEDIATE."""
    engine = engine_for(url)  # stops with `bankmarketing migrate` to run if the schema is behind
    if engine.dialect.name != "sqlite":
        return engine
    immediate = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(immediate, "connect")
    def _no_implicit_begin(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the driver leaves transactions to us

    @sa.event.listens_for(immediate, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return immediate


@contextmanager
def _decision(url: str):
    """One transaction holding the receiver's decision lock."""
    engine = _engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DECISION_LOCK})
        yield connection


@dataclass(frozen=True)
class Claim:
    """What the receiver decided for one firing alert; `retraining_id` is set when it must start one."""

    decision: str  # started | duplicate | cooldown | in_flight
    event_id: int
    retraining_id: int | None
    detail: str


def _expire_stale(connection, now: dt.datetime, max_runtime_s: float) -> None:
    cutoff = now - dt.timedelta(seconds=max_runtime_s)
    connection.execute(
        retraining.update()
        .where(retraining.c.status.in_(IN_FLIGHT), retraining.c.requested_at < cutoff)
        .values(
            status="failed",
            updated_at=now,
            finished_at=now,
            detail=f"stale: no end reported within RETRAIN_MAX_RUNTIME_SECONDS={max_runtime_s:g}",
        )
    )


def _event_row(alert, group_key: str, now: dt.datetime, decision: str, retraining_id, detail: str) -> dict:
    return {
        "received_at": now,
        "status": alert.status,
        "alertname": alert.alertname,
        "fingerprint": alert.fingerprint,
        "starts_at": alert.startsAt.astimezone(dt.UTC),
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "values": alert.values,
        "group_key": group_key,
        "decision": decision,
        "retraining_id": retraining_id,
        "detail": detail,
    }


def record_resolved(url: str, alert, group_key: str) -> int:
    """A resolved alert is recorded and starts nothing."""
    with _engine(url).begin() as connection:
        row = _event_row(alert, group_key, _now(), "resolved", None, "resolved alerts start nothing")
        return connection.execute(alert_event.insert().values(**row)).inserted_primary_key[0]


def claim(
    url: str, alert, group_key: str, cooldown_s: float, max_runtime_s: float, triggered_by: str
) -> Claim:
    """Decide atomically whether this firing alert starts a retraining; record the event either way."""
    now = _now()
    starts_at = alert.startsAt.astimezone(dt.UTC)
    with _decision(url) as connection:
        _expire_stale(connection, now, max_runtime_s)
        same = connection.execute(
            sa.select(retraining).where(
                retraining.c.fingerprint == alert.fingerprint, retraining.c.starts_at == starts_at
            )
        ).first()
        in_flight = connection.execute(
            sa.select(retraining.c.id, retraining.c.status)
            .where(retraining.c.status.in_(IN_FLIGHT))
            .order_by(retraining.c.requested_at.desc())
        ).first()
        last = connection.execute(
            sa.select(retraining.c.id, retraining.c.requested_at)
            .where(retraining.c.status != TRIGGER_FAILED)
            .order_by(retraining.c.requested_at.desc())
        ).first()
        retraining_id = None
        if same is not None and same.status != TRIGGER_FAILED:
            decision, retraining_id = "duplicate", same.id
            detail = (
                f"this alert (fingerprint, startsAt) already started retraining {same.id} ({same.status})"
            )
        elif in_flight is not None:
            decision = "in_flight"
            detail = f"retraining {in_flight.id} is still {in_flight.status}"
        elif last is not None and (now - _aware(last.requested_at)).total_seconds() < cooldown_s:
            decision = "cooldown"
            left = cooldown_s - (now - _aware(last.requested_at)).total_seconds()
            detail = f"retraining {last.id} started less than {cooldown_s:g} s ago ({left:.0f} s left)"
        else:
            decision, detail = "started", "retraining requested from Mage"
            values = {
                "alertname": alert.alertname,
                "status": "triggering",
                "requested_at": now,
                "updated_at": now,
                "finished_at": None,
                "triggered_by": triggered_by,
                "detail": "",
            }
            if same is not None:  # an earlier trigger of this alert failed: try again on the same row
                connection.execute(
                    retraining.update()
                    .where(retraining.c.id == same.id)
                    .values(**values, attempts=same.attempts + 1)
                )
                retraining_id = same.id
            else:
                try:
                    with connection.begin_nested():
                        retraining_id = connection.execute(
                            retraining.insert().values(
                                fingerprint=alert.fingerprint, starts_at=starts_at, attempts=1, **values
                            )
                        ).inserted_primary_key[0]
                except IntegrityError:  # only without the lock; kept as the last line of defence
                    decision, detail = "duplicate", "this alert already started a retraining"
        row = _event_row(alert, group_key, now, decision, retraining_id, detail)
        event_id = connection.execute(alert_event.insert().values(**row)).inserted_primary_key[0]
    return Claim(decision, event_id, retraining_id, detail)


def finish_trigger(
    url: str, claim_: Claim, ok: bool, detail: str, schedule_id: int | None, pipeline_run_id: int | None
) -> str:
    """Record Mage's answer: the retraining is triggered, or its trigger failed (event decision `failed`)."""
    now = _now()
    with _engine(url).begin() as connection:
        connection.execute(
            retraining.update()
            .where(retraining.c.id == claim_.retraining_id, retraining.c.status == "triggering")
            .values(
                status="triggered" if ok else TRIGGER_FAILED,
                updated_at=now,
                finished_at=None if ok else now,
                mage_schedule_id=schedule_id,
                mage_pipeline_run_id=pipeline_run_id,
                detail=detail,
            )
        )
        decision = "started" if ok else "failed"
        connection.execute(
            alert_event.update()
            .where(alert_event.c.id == claim_.event_id)
            .values(decision=decision, detail=detail)
        )
    return decision


def mark_retraining(settings, retraining_id: int | str | None, status: str, detail: str = "") -> bool:
    """The retrain pipeline reports its progress: running, succeeded or failed.

    `retraining_id` is the pipeline variable the receiver sent; a run started by hand has
    none, and then nothing is recorded (returns False). Returns True when a row changed.
    """
    if status not in RETRAINING_STATUSES:
        raise ValueError(f"status must be one of {RETRAINING_STATUSES}, not {status!r}")
    if retraining_id in (None, ""):
        return False
    now = _now()
    values: dict[str, Any] = {"status": status, "updated_at": now, "detail": detail}
    if status != "running":
        values["finished_at"] = now
    with _engine(settings.platform_database_url).begin() as connection:
        changed = connection.execute(
            retraining.update().where(retraining.c.id == int(retraining_id)).values(**values)
        ).rowcount
    return bool(changed)


def recent(url: str, limit: int = 50) -> dict[str, list[dict]]:
    """The newest alert events and retrainings, for GET /alerts."""

    def rows(table, order):
        with _engine(url).connect() as connection:
            result = connection.execute(sa.select(table).order_by(order.desc()).limit(limit)).mappings()
            return [
                {k: (_aware(v).isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}
                for row in result
            ]

    return {"events": rows(alert_event, alert_event.c.id), "retrainings": rows(retraining, retraining.c.id)}


def counts(url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Alert events per decision and retrainings per status (Prometheus gauges, right across workers)."""
    with _engine(url).connect() as connection:
        decisions = connection.execute(
            sa.select(alert_event.c.decision, sa.func.count()).group_by(alert_event.c.decision)
        ).all()
        statuses = connection.execute(
            sa.select(retraining.c.status, sa.func.count()).group_by(retraining.c.status)
        ).all()
    return dict(decisions), dict(statuses)


def ping(url: str) -> None:
    with _engine(url).connect() as connection:
        connection.execute(sa.text("SELECT 1"))
