"""The prediction log's queue: bounded, batched, everything queued written at close."""

from __future__ import annotations

import datetime as dt
import time

import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log
from bankmarketing.serving.prediction_log import PredictionLog


def _row(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "at": dt.datetime.now(dt.UTC),
        "model_name": "m",
        "model_version": 1,
        "score": 0.5,
        "decision": True,
        "features": {"age": i},
    }


def _count(url: str) -> int:
    with engine_for(url).connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar()


def test_rows_beyond_capacity_are_dropped_and_the_rest_written_at_close(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url, capacity=250, batch_size=100, flush_interval_s=30)
    log.append([_row(i) for i in range(200)])
    log.append([_row(i) for i in range(200, 300)])  # 50 fit
    assert log.dropped == 50
    log.start()  # a full batch wakes the writer without waiting for the flush interval
    log.close()
    assert _count(url) == log.written == 250 and log.dropped == 50


def test_a_full_batch_is_written_before_the_flush_interval(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    log = PredictionLog(url, batch_size=10, flush_interval_s=60).start()
    log.append([_row(i) for i in range(25)])
    deadline = time.monotonic() + 10
    while log.written < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.written >= 20  # two batches of 10 at once; the last 5 wait for the interval
    log.close()
    assert _count(url) == 25
