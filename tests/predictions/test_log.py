"""The prediction log's queue: bounded, batched, everything queued written at close."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
import uuid

import pytest
import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log
from bankmarketing.predictions.log import PredictionLog
from tests.conftest import migrated


def _row(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "at": dt.datetime.now(dt.UTC),
        "model_name": "m",
        "model_version": 1,
        "score": 0.5,
        "decision": True,
        "features": {"age": i},
        "arm": None,
        "shadow_version": None,
        "shadow_score": None,
    }


def _count(url: str) -> int:
    with engine_for(url).connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()


def test_rows_beyond_capacity_are_dropped_and_the_rest_written_at_close(tmp_path):
    url = migrated(f"sqlite:///{tmp_path}/log.db")
    log = PredictionLog(url, capacity=250, batch_size=100, flush_interval_s=30)
    log.append([_row(i) for i in range(200)])
    log.append([_row(i) for i in range(200, 300)])  # 50 fit
    assert log.dropped == 50
    log.start()  # a full batch wakes the writer without waiting for the flush interval
    log.close()
    assert _count(url) == log.written == 250 and log.dropped == 50


def test_a_full_batch_is_written_before_the_flush_interval(tmp_path):
    url = migrated(f"sqlite:///{tmp_path}/log.db")
    log = PredictionLog(url, batch_size=10, flush_interval_s=60).start()
    log.append([_row(i) for i in range(25)])
    deadline = time.monotonic() + 10
    while log.written < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.written >= 20  # two batches of 10 at once; the last 5 wait for the interval
    log.close()
    assert _count(url) == 25


def test_a_writer_that_falls_behind_slows_requests_down_and_drops_nothing(tmp_path):
    url = migrated(f"sqlite:///{tmp_path}/log.db")
    log = PredictionLog(url, capacity=100, batch_size=50, flush_interval_s=30).start()
    for start in range(0, 5_000, 50):  # appending outruns any writer: the queue fills at once
        log.append([_row(i) for i in range(start, start + 50)])
    log.close()
    assert log.dropped == 0 and log.waited_s > 0
    assert _count(url) == log.written == 5_000


def test_a_request_waits_for_room_at_most_max_wait_then_the_rows_are_counted_as_dropped(tmp_path):
    url = migrated(f"sqlite:///{tmp_path}/log.db")
    engine_for(url)  # the table exists before the lock is taken
    blocker = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer's insert waits on the lock
    log = PredictionLog(url, capacity=10, batch_size=10, flush_interval_s=0.01, max_wait_s=0.3).start()
    log.append([_row(i) for i in range(10)])
    deadline = time.monotonic() + 10
    while log._rows and time.monotonic() < deadline:  # the writer holds these, blocked
        time.sleep(0.01)
    log.append([_row(i) for i in range(10, 20)])
    started = time.monotonic()
    log.append([_row(i) for i in range(20, 30)])  # no room: waits, then drops
    assert 0.3 <= time.monotonic() - started < 3 and log.dropped == 10 and log.waited_s >= 0.3
    blocker.rollback()
    blocker.close()
    log.close()
    assert _count(url) == log.written == 20


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store_url(request, tmp_path) -> str:
    """The local stack's SQLite file, or a real Postgres (written through COPY)."""
    if request.param == "sqlite":
        return migrated(f"sqlite:///{tmp_path}/log.db")
    return request.getfixturevalue("postgres_url")(f"log_{uuid.uuid4().hex[:8]}")


def test_rows_are_stored_exactly_and_a_replayed_batch_once(store_url):
    awkward = 'tab\there, newline\nthere, back\\slash, quote " and ünïcode'
    rows = [
        _row(0) | {"request_id": awkward, "features": {"job": awkward, "age": 41, "balance": -3.5}},
        _row(1) | {"arm": "challenger", "shadow_version": 2, "shadow_score": 0.123456789012345},
        _row(2) | {"decision": False, "score": 1e-12},
    ]
    log = PredictionLog(store_url, batch_size=2)
    log.append([dict(row) for row in rows])
    log.start()
    log.close()
    with engine_for(store_url).begin() as connection:  # the same keyed rows, written again
        keyed = [row | {"log_key": key} for row, key in zip(rows, _keys(store_url), strict=True)]
        log._write(connection, keyed)
    with engine_for(store_url).connect() as connection:
        stored = connection.execute(sa.select(prediction_log).order_by(prediction_log.c.id)).mappings().all()
    assert len(stored) == 3 and log.written == 3
    for expected, got in zip(rows, stored, strict=True):
        got = dict(got) | {"at": got["at"].replace(tzinfo=dt.UTC) if got["at"].tzinfo is None else got["at"]}
        assert {k: got[k] for k in expected} == expected


def _keys(url: str) -> list[str]:
    with engine_for(url).connect() as connection:
        query = sa.select(prediction_log.c.log_key).order_by(prediction_log.c.id)
        return connection.execute(query).scalars().all()
