"""What the platform's Flask services share: every error is JSON, never a page or a trace, and
every client sees its answer, an oversize or slow body included."""

from __future__ import annotations

import logging
import socket
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestTimeout
from werkzeug.wsgi import ClosingIterator

from bankmarketing.config import BODY_DRAIN_BYTES, BODY_SECONDS

_CHUNK = 64 * 1024


def json_error(status: int, message: str, detail: list | None = None):
    """The error body every service answers with: a message and the per-field details."""
    return jsonify({"error": message, "detail": detail or []}), status


def install_json_errors(
    app: Flask, max_body_bytes: int, unexpected_status: int, unexpected_message: str, log: logging.Logger
) -> None:
    """HTTP errors as JSON (413 names the limit); anything unexpected is logged, never echoed."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if exc.code == 413:
            return json_error(413, f"request body larger than {max_body_bytes} bytes")
        return json_error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")
        return json_error(unexpected_status, unexpected_message)  # no paths or stack traces


class BodyTimeout(RequestTimeout):
    """408: the body did not arrive within the bound."""


class _Watchdog:
    """One thread per process: at a body's deadline it shuts the reading side of its socket, so a
    blocked read returns at once however the client trickles its bytes."""

    def __init__(self):
        self._lock = threading.Condition()
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._wakes_at: float | None = None  # None: the thread is asleep until notified (or absent)
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> None:
        with self._lock:
            self._watched[id(sock)] = (deadline, sock)
            if self._thread is None or not self._thread.is_alive():  # first use, or forked
                self._thread = threading.Thread(target=self._run, name="body-deadlines", daemon=True)
                self._thread.start()
            elif self._wakes_at is None or deadline < self._wakes_at:
                self._lock.notify()

    def unwatch(self, sock: socket.socket) -> None:
        """Before the server closes the socket: the thread never touches it afterwards."""
        with self._lock:
            self._watched.pop(id(sock), None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for key, (deadline, sock) in list(self._watched.items()):
                    if deadline <= now:
                        del self._watched[key]
                        try:
                            sock.shutdown(socket.SHUT_RD)  # a blocked recv returns b"" now
                        except OSError:
                            pass
                self._wakes_at = min((d for d, _ in self._watched.values()), default=None)
                self._lock.wait(None if self._wakes_at is None else self._wakes_at - now)


_watchdog = _Watchdog()


class _TimedInput:
    """`wsgi.input` with a deadline: past it, a read is a 408 (gunicorn's socket is shut for reading
    at the deadline, so a read never waits beyond it)."""

    def __init__(self, stream, sock: socket.socket | None, seconds: float):
        self.stream, self.sock, self.seconds = stream, sock, seconds
        self.deadline = time.monotonic() + seconds
        if sock is not None:
            _watchdog.watch(sock, self.deadline)

    def _call(self, method, *args):
        if time.monotonic() < self.deadline:
            try:
                data = method(*args)
            except OSError:
                if time.monotonic() < self.deadline:
                    raise  # the client went away: werkzeug's 400
            else:
                if data or time.monotonic() < self.deadline:
                    return data
        raise BodyTimeout(f"request body not received within {self.seconds:g} s")

    def read(self, size: int | None = -1) -> bytes:
        return self._call(self.stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._call(self.stream.readline, size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return self._call(self.stream.readlines, hint)

    def __iter__(self):
        return iter(self.readline, b"")

    def drain(self, limit: int, declared: int | None) -> None:
        """Read and discard what the app left unread: at most `limit` bytes, until the deadline."""
        try:
            if declared is not None and declared > limit:
                return  # the client sees the answer only if it reads while it sends (documented)
            left = limit
            while left > 0:
                chunk = self.read(min(_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
        except Exception:  # too slow, gone, or a bad chunk: the connection closes as it is
            return
        finally:
            if self.sock is not None:
                _watchdog.unwatch(self.sock)


class _BodyBounds:
    """WSGI middleware: the body read within the bound, and drained after the answer, so that
    closing the connection sends the client no reset while it is still writing."""

    def __init__(self, wsgi_app, seconds: float, drain_bytes: int):
        self.wsgi_app, self.seconds, self.drain_bytes = wsgi_app, seconds, drain_bytes

    def __call__(self, environ, start_response):
        body = _TimedInput(environ["wsgi.input"], environ.get("gunicorn.socket"), self.seconds)
        environ["wsgi.input"] = body
        try:
            declared = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            declared = None
        try:
            answer = self.wsgi_app(environ, start_response)
        except BaseException:
            body.drain(0, None)  # only stops watching
            raise
        # gunicorn calls close() once the answer is written: drain then, before it closes.
        return ClosingIterator(answer, lambda: body.drain(self.drain_bytes, declared))


def limit_bodies(
    app: Flask, max_body_bytes: int, seconds: float = BODY_SECONDS, drain_bytes: int = BODY_DRAIN_BYTES
) -> None:
    """Every request's body is read before its handler runs: beyond `max_body_bytes` (declared or
    chunked) a 413 on every endpoint, not within `seconds` a 408; after the answer, what is left is
    drained (bounded) so that a client that writes its whole body before reading sees the answer.

    Call after the app's other `before_request` functions (this one may raise).
    """
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @app.before_request
    def _read_body():
        data = request.get_data()  # cached for the handler; 413 when the declared length is over
        if len(data) >= max_body_bytes and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()  # chunked: werkzeug stops at the limit without a word

    app.wsgi_app = _BodyBounds(app.wsgi_app, seconds, drain_bytes)
