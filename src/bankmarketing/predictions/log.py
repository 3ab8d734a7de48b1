"""Every prediction appended to the platform database, in batches, off the request path.

When the writer falls behind (requests arrive faster than the database takes rows), a request
that finds the in-memory queue full waits for room: backpressure, never a dropped row. While the
database is down the rows are kept in memory up to a bound, then spilled to disk (one folder per
worker, append-only files fsync'd per batch) and written when the database returns: spilled
files first, oldest first, each deleted only after its rows are committed.
Every row carries a writer key (`log_key`, unique in the table) and is inserted with
"on conflict do nothing", so a file replayed twice (the process died between the commit and
the delete) or a batch retried after a lost commit acknowledgement is written once.
"""

from __future__ import annotations

import collections
import datetime as dt
import fcntl
import io
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log

log = logging.getLogger(__name__)

_SUFFIX = ".jsonl"
#: How often a worker looks for folders of workers that died with rows spilled.
_ADOPT_EVERY_S = 60.0
_COLUMNS = {c.name for c in prediction_log.columns} - {"id"}
#: Columns a spilled row may lack (spilled before a migration added them): the nullable ones,
#: written as NULL. `log_key` never: the writer keys every row before it spills it.
_OPTIONAL = {c.name for c in prediction_log.columns if c.nullable} - {"log_key"}


def _insert(dialect: str):
    """An insert that skips rows whose `log_key` is already in the table."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the platform runs on SQLite or Postgres
        return sa.insert(prediction_log)
    return insert(prediction_log).on_conflict_do_nothing()


#: Postgres: rows are COPYed into this session table, then inserted unless their key is known.
_INCOMING = "prediction_log_incoming"
_COPY_COLUMNS = [c.name for c in prediction_log.columns if c.name != "id"]
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    """One value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        value = json.dumps(value, separators=(",", ":"))
    return str(value).translate(_ESCAPES)


def _copy(connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """COPY the rows into a temporary table, then insert those whose `log_key` is new: several
    times faster than an INSERT of many VALUES, and as idempotent."""
    columns = ", ".join(_COPY_COLUMNS)
    text = "".join(
        "\t".join(_copy_field(row.get(name)) for name in _COPY_COLUMNS) + "\n" for row in rows
    )
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_INCOMING} AS "
            f"SELECT {columns} FROM prediction_log WITH NO DATA"
        )
        cursor.copy_expert(f"COPY {_INCOMING} ({columns}) FROM STDIN", io.StringIO(text))
        cursor.execute(
            f"INSERT INTO prediction_log ({columns}) SELECT {columns} FROM {_INCOMING} "
            "ON CONFLICT DO NOTHING"
        )
        cursor.execute(f"TRUNCATE {_INCOMING}")  # empty for the next batch, in this transaction or not
    finally:
        cursor.close()


def _json_default(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class PredictionLog:
    """A bounded in-memory queue drained by one thread that inserts rows in batches.

    `append` only adds to a deque (no lock, no wake-up of the writer per row; the writer wakes
    every `flush_interval_s`, or at once when a batch is full). A request that finds `capacity`
    rows queued waits until the writer has taken them (at most `max_wait_s`; the time waited is
    counted in `waited_s`). When the database is down the writer keeps the rows and retries every
    `retry_s`; with a `spill_dir`, once half of `capacity` is held it moves them to disk (up to
    `spill_max_bytes` per worker). Rows are dropped (and counted) only when there is nowhere to
    put them: beyond the disk cap, beyond `capacity` in an outage without a spill folder or with
    no writer running, or after waiting `max_wait_s`.
    """

    def __init__(
        self,
        database_url: str,
        capacity: int = 100_000,
        batch_size: int = 5_000,  # SQLite: ~9 us of CPU a row in batches of 5,000, ~11 in 1,000
        flush_interval_s: float = 0.5,
        spill_dir: Path | None = None,
        spill_max_bytes: int = 1 << 30,
        retry_s: float = 1.0,
        segment_bytes: int = 8 << 20,
        max_wait_s: float = 10.0,
    ):
        self.database_url = database_url
        self.capacity, self.batch_size, self.flush_interval_s = capacity, batch_size, flush_interval_s
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.spill_max_bytes, self.retry_s, self.segment_bytes = spill_max_bytes, retry_s, segment_bytes
        self.spill_at = max(1, capacity // 2)  # rows held during an outage before spilling
        self._batch_wake = min(batch_size, self.spill_at)  # a batch worth waking the writer for
        self._rows: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._wake_at = self._batch_wake  # rows queued that wake the writer (spill_at in an outage)
        self.max_wait_s = max_wait_s
        self._room = threading.Event()  # set by the writer when it takes rows off the queue
        self._outage = False  # the last write failed (set by the writer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0  # rows committed (spilled ones included once written)
        self.dropped = 0
        self.spilled = 0  # rows moved to disk
        self.replayed = 0  # spilled rows read back and committed (by this writer)
        self.waited_s = 0.0  # time requests waited for room in the queue (backpressure)
        self.last_error: str | None = None
        self._writer_id = os.urandom(6).hex()
        self._seq = 0
        # Disk state, touched by the writer thread only.
        self._folder: Path | None = None
        self._folder_lock: int | None = None
        self._segment = None  # the open file spills are appended to
        self._files: list[Path] = []  # spilled files not yet written, own and adopted
        self._spill_bytes = 0
        self._adopted: dict[Path, int] = {}  # folders of dead workers taken over -> their lock
        self._adopted_at = float("-inf")
        self._insert_statement = None

    # --- request path -----------------------------------------------------------------

    def start(self) -> PredictionLog:
        try:
            engine_for(self.database_url)  # its schema checked before the first request
        except Exception as exc:  # the database is down: the writer keeps trying
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("prediction log: the database is unreachable at start: %s", exc)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def append(self, rows: list[dict[str, Any]]) -> None:
        if len(self._rows) + len(rows) > self.capacity:
            self._wait_for_room(len(rows))
        room = max(self.capacity - len(self._rows), 0) if self._rows else len(rows)
        if len(rows) > room:
            self.dropped += len(rows) - room
            log.error("prediction log: %d rows dropped (no room in the queue)", len(rows) - room)
            rows = rows[:room]
        self._rows.extend(rows)  # deque operations are atomic: the writer pops concurrently
        if len(self._rows) >= self._wake_at and not self._wake.is_set():
            self._wake.set()

    def _can_make_room(self) -> bool:
        """A running writer empties the queue, into the database or (in an outage) to disk."""
        alive = self._thread is not None and self._thread.is_alive() and not self._stop.is_set()
        return alive and not (self._outage and self.spill_dir is None)

    def _wait_for_room(self, needed: int) -> None:
        """Backpressure: block the request until `needed` rows fit (or the queue is empty)."""
        started = time.monotonic()
        deadline = started + self.max_wait_s
        while len(self._rows) + needed > self.capacity and len(self._rows) and self._can_make_room():
            now = time.monotonic()
            if now >= deadline:
                break
            self._room.clear()
            self._wake.set()
            self._room.wait(min(0.05, deadline - now))
        self.waited_s += time.monotonic() - started

    # --- the writer thread ------------------------------------------------------------

    def _key(self, row: dict[str, Any]) -> dict[str, Any]:
        if "log_key" not in row:
            self._seq += 1
            row["log_key"] = f"{self._writer_id}-{self._seq}"
        return row

    def _take(self, pending: list[dict[str, Any]]) -> None:
        for _ in range(min(self.batch_size - len(pending), len(self._rows))):
            pending.append(self._key(self._rows.popleft()))
        self._room.set()

    def _write(self, connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if connection.dialect.name == "postgresql":
            _copy(connection, rows)
            return
        if self._insert_statement is None:
            self._insert_statement = _insert(connection.dialect.name)
        connection.execute(self._insert_statement, rows)

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        retry_at = 0.0  # after a failed write: no database attempt before this (monotonic)
        self._adopt()
        while True:
            outage = retry_at > 0
            if not self._stop.is_set():
                if outage:
                    if len(pending) + len(self._rows) < self.spill_at:
                        self._wake.wait(min(self.flush_interval_s, max(0.0, retry_at - time.monotonic())))
                    self._wake.clear()
                elif not pending and not self._files and len(self._rows) < self._batch_wake:
                    self._wake.wait(self.flush_interval_s)
                    self._wake.clear()
            stopping = self._stop.is_set()
            if outage and (stopping or time.monotonic() < retry_at):
                if stopping:  # the database is down: what is held goes to disk, for the next start
                    self._spill(pending)
                    self._close_segment()
                    self._unlock()  # the folder is now an orphan the next writer takes over
                    return
                if len(pending) + len(self._rows) >= self.spill_at:
                    self._spill(pending)
                continue
            try:
                if time.monotonic() - self._adopted_at > _ADOPT_EVERY_S:
                    self._adopt()
                self._replay()
                self._take(pending)
                if pending:
                    with engine_for(self.database_url).begin() as connection:
                        self._write(connection, pending)
                    self.written += len(pending)
                    pending = []
                if retry_at:
                    log.info("prediction log: the database is back")
                retry_at, self._wake_at, self.last_error, self._outage = 0.0, self._batch_wake, None, False
            except Exception as exc:  # keep the rows, retry after a pause
                self.last_error = f"{type(exc).__name__}: {exc}"
                if not retry_at:
                    log.warning("prediction log write failed (%d rows kept): %s", len(pending), exc)
                retry_at, self._outage = time.monotonic() + self.retry_s, True
                if self.spill_dir is not None:
                    self._wake_at = self.spill_at
                continue  # stopping: spill at once; else wait for the retry, spilling if need be
            if stopping and not self._rows:
                self._release()
                return

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (or spill it to disk when the database is down), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- spilling -----------------------------------------------------------------------

    def _own_folder(self) -> Path:
        if self._folder is None:
            assert self.spill_dir is not None
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            name = f"{socket.gethostname()}-{os.getpid()}-{self._writer_id}"
            # The lock first, held for the worker's life: a folder whose lock can be taken is
            # an orphan that another worker may write and delete.
            self._folder_lock = os.open(self.spill_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._folder_lock, fcntl.LOCK_EX)
            self._folder = self.spill_dir / name
            self._folder.mkdir(exist_ok=True)
        return self._folder

    def _spill(self, pending: list[dict[str, Any]]) -> None:
        """Append the held rows (`pending`, then the queue) to the current file; fsync once."""
        if self.spill_dir is None:
            return
        rows = [self._key(row) for row in pending]
        pending.clear()
        for _ in range(len(self._rows)):
            rows.append(self._key(self._rows.popleft()))
        self._room.set()
        if not rows:
            return
        lines = [json.dumps(row, default=_json_default, separators=(",", ":")) + "\n" for row in rows]
        data = "".join(lines).encode()
        if self._spill_bytes + len(data) > self.spill_max_bytes:
            kept, size = 0, 0
            for line in lines:
                if self._spill_bytes + size + len(line.encode()) > self.spill_max_bytes:
                    break
                size += len(line.encode())
                kept += 1
            self.dropped += len(lines) - kept
            log.warning("prediction log: spill cap reached, %d rows dropped", len(lines) - kept)
            data, rows = "".join(lines[:kept]).encode(), rows[:kept]
            if not rows:
                return
        try:
            if self._segment is None or self._segment.tell() >= self.segment_bytes:
                self._close_segment()
                path = self._own_folder() / f"{time.time_ns():020d}-{self._seq:012d}{_SUFFIX}"
                self._segment = open(path, "ab")
                self._files.append(path)
                folder = os.open(path.parent, os.O_RDONLY)  # the new file's name survives a crash
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
            self._segment.write(data)
            self._segment.flush()
            os.fsync(self._segment.fileno())
        except OSError as exc:
            self.dropped += len(rows)
            log.error("prediction log: %d rows not spilled to %s: %s", len(rows), self.spill_dir, exc)
            self._close_segment()
            return
        self._spill_bytes += len(data)
        self.spilled += len(rows)

    def _close_segment(self) -> None:
        if self._segment is not None:
            try:
                self._segment.close()
            except OSError:
                pass
            self._segment = None

    def _read(self, path: Path) -> list[dict[str, Any]]:
        rows = []
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                try:
                    row = json.loads(line)
                    row["at"] = dt.datetime.fromisoformat(row["at"])
                    row = dict.fromkeys(_OPTIONAL - row.keys()) | row
                    if row.keys() != _COLUMNS:
                        raise KeyError(sorted(row.keys() ^ _COLUMNS))
                except (ValueError, KeyError, TypeError):  # a line torn by a crash mid-write
                    log.warning("prediction log: %s line %d is not a row, skipped", path, number)
                    continue
                rows.append(row)
        return rows

    def _replay(self) -> None:
        """Write the spilled files, oldest first; each is deleted after its rows are committed."""
        if not self._files:
            return
        self._close_segment()
        self._files.sort(key=lambda path: path.name)
        while self._files:
            path = self._files[0]
            # Connect before reading: while the database is down a retry costs no parsing.
            with engine_for(self.database_url).begin() as connection:
                try:
                    size = path.stat().st_size
                    rows = self._read(path)
                except FileNotFoundError:  # written and deleted already
                    rows = None
                for start in range(0, len(rows or ()), self.batch_size):
                    self._write(connection, rows[start : start + self.batch_size])
            if rows is None:
                self._files.pop(0)
                continue
            path.unlink(missing_ok=True)
            self._files.pop(0)
            self._spill_bytes = max(0, self._spill_bytes - size)
            self.written += len(rows)
            self.replayed += len(rows)
            log.info("prediction log: %d spilled rows written from %s", len(rows), path.name)
        for folder, lock in list(self._adopted.items()):
            self._remove_folder(folder, lock)
            del self._adopted[folder]

    def _adopt(self) -> None:
        """Take over the spill folders of workers that stopped (their lock is free)."""
        self._adopted_at = time.monotonic()
        if self.spill_dir is None or not self.spill_dir.is_dir():
            return
        for folder in sorted(self.spill_dir.iterdir()):
            if not folder.is_dir() or folder == self._folder or folder in self._adopted:
                continue
            lock = os.open(self.spill_dir / f"{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its worker is alive
                os.close(lock)
                continue
            if not folder.is_dir():  # written and removed meanwhile by another worker
                self._remove_folder(folder, lock)
                continue
            files = sorted(folder.glob(f"*{_SUFFIX}"))
            self._adopted[folder] = lock
            self._files.extend(files)
            self._spill_bytes += sum(path.stat().st_size for path in files)
            if files:
                log.info("prediction log: %d spilled files of a stopped worker taken over", len(files))

    def _remove_folder(self, folder: Path, lock: int) -> None:
        try:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
            if not folder.exists():
                (folder.parent / f"{folder.name}.lock").unlink(missing_ok=True)
        finally:
            os.close(lock)

    def _unlock(self) -> None:
        if self._folder_lock is not None:
            os.close(self._folder_lock)
        self._folder, self._folder_lock = None, None
        for lock in self._adopted.values():
            os.close(lock)
        self._adopted.clear()

    def _release(self) -> None:
        """At a clean stop: remove the own folder if everything in it was written."""
        self._close_segment()
        if self._folder is not None and self._folder_lock is not None and not self._files:
            self._remove_folder(self._folder, self._folder_lock)
            self._folder, self._folder_lock = None, None
        self._unlock()
