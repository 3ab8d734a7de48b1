"""Every prediction appended to the platform database, in batches, off the request path."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import sqlalchemy as sa

from bankmarketing.database import engine_for, prediction_log

log = logging.getLogger(__name__)


class PredictionLog:
    """A bounded queue drained by one thread that inserts rows in batches.

    Requests never wait on the database: `append` only enqueues. When the database is down
    the writer keeps the rows and retries; rows beyond `capacity` are counted as dropped.
    """

    def __init__(
        self,
        database_url: str,
        capacity: int = 100_000,
        batch_size: int = 1_000,
        flush_interval_s: float = 0.5,
    ):
        self.database_url = database_url
        self.batch_size, self.flush_interval_s = batch_size, flush_interval_s
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    def start(self) -> PredictionLog:
        engine_for(self.database_url)  # create the table before the first request
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        return self

    def append(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1

    def _take(self, pending: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + self.flush_interval_s
        while len(pending) < self.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                pending.append(self._queue.get(timeout=timeout))
            except queue.Empty:
                break

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        while not (self._stop.is_set() and self._queue.empty() and not pending):
            self._take(pending)
            if not pending:
                continue
            try:
                with engine_for(self.database_url).begin() as connection:
                    connection.execute(sa.insert(prediction_log), pending)
                self.written += len(pending)
                pending = []
                self.last_error = None
            except Exception as exc:  # keep the rows, retry after a pause
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("prediction log write failed (%d rows kept): %s", len(pending), exc)
                if self._stop.wait(1.0):
                    break

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
