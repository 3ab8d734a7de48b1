"""The prediction log through a database outage: bounded memory, spilled to disk, written once."""

from __future__ import annotations

import shutil
import time

import pytest
import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log
from bankmarketing.predictions import log as module
from bankmarketing.predictions.log import PredictionLog
from tests.conftest import migrated
from tests.predictions.test_log import _count, _row


@pytest.fixture
def outage(monkeypatch):
    """`down["now"] = True` makes every database attempt of the log fail."""
    down = {"now": False}

    def engine(url):
        if down["now"]:
            raise sa.exc.OperationalError("connect", {}, ConnectionRefusedError("database is down"))
        return engine_for(url)

    monkeypatch.setattr(module, "engine_for", engine)
    return down


def _wait(condition, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert condition()


def _log(tmp_path, **overrides) -> PredictionLog:
    options = {"capacity": 100, "batch_size": 20, "flush_interval_s": 0.02, "retry_s": 0.1}
    url = migrated(f"sqlite:///{tmp_path}/log.db")
    return PredictionLog(url, spill_dir=tmp_path / "spill", **(options | overrides))


def _spilled_files(tmp_path) -> list:
    return sorted((tmp_path / "spill").glob("*/*.jsonl"))


def _request_ids(url: str) -> list[str]:
    with engine_for(url).connect() as connection:
        return connection.execute(sa.select(prediction_log.c.request_id)).scalars().all()


def test_rows_beyond_the_memory_bound_are_spilled_and_written_once_when_the_database_returns(
    tmp_path, outage
):
    log = _log(tmp_path).start()
    outage["now"] = True
    for chunk in range(50):  # 500 rows, 5x the in-memory bound
        log.append([_row(chunk * 10 + i) for i in range(10)])
        time.sleep(0.004)
    _wait(lambda: log.spilled >= 400)
    assert log.dropped == 0 and len(log._rows) <= log.capacity and _spilled_files(tmp_path)
    assert _count(log.database_url) == 0
    outage["now"] = False
    _wait(lambda: log.written == 500)
    log.close()
    assert sorted(_request_ids(log.database_url)) == sorted(f"r{i}" for i in range(500))
    assert log.replayed == log.spilled and not _spilled_files(tmp_path)


def test_a_stopping_writer_spills_and_a_replay_after_a_crash_before_the_delete_adds_nothing(tmp_path, outage):
    first = _log(tmp_path, capacity=1000).start()
    outage["now"] = True
    first.append([_row(i) for i in range(300)])
    _wait(lambda: first.last_error is not None)
    first.close()  # the database is down: everything held goes to disk
    assert first.spilled == 300 and first.written == 0
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "spill", saved)
    outage["now"] = False
    second = _log(tmp_path).start()  # takes over the stopped writer's folder
    _wait(lambda: second.written == 300)
    second.close()
    assert not _spilled_files(tmp_path)
    # The process died after the commit, before the delete: the same files are found again.
    shutil.rmtree(tmp_path / "spill")
    shutil.copytree(saved, tmp_path / "spill")
    third = _log(tmp_path).start()
    _wait(lambda: third.replayed == 300)
    third.close()
    assert sorted(_request_ids(third.database_url)) == sorted(f"r{i}" for i in range(300))
    assert not _spilled_files(tmp_path)


def test_rows_beyond_the_disk_cap_are_counted_as_dropped(tmp_path, outage):
    log = _log(tmp_path, capacity=1000, spill_max_bytes=20_000).start()
    outage["now"] = True
    log.append([_row(i) for i in range(300)])  # ~190 bytes a row: about 100 fit
    _wait(lambda: log.last_error is not None)
    log.close()
    assert 50 < log.spilled < 150 and log.spilled + log.dropped == 300
    assert sum(path.stat().st_size for path in _spilled_files(tmp_path)) <= 20_000
    outage["now"] = False
    again = _log(tmp_path).start()
    _wait(lambda: again.written == log.spilled)
    again.close()
    assert _count(log.database_url) == log.spilled
