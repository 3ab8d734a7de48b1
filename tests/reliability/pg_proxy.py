"""A TCP proxy in front of a real Postgres whose connections a test cuts on command.

The client talks to the proxy's port; the proxy forwards bytes both ways. `cut()` drops
every open connection at once (the client reads EOF on its next statement, the server's
backend reads EOF and rolls its transaction back), as when the server restarts or the
network fails. `go_down()` also turns away every later connection, so a retry fails too.
Standard library only: it runs in Mage's environment as well as the tests'.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


class PgProxy:
    """Forwards 127.0.0.1:`port` (chosen free) to `target_port`; cut or taken down on command."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted: list[float] = []  # monotonic times of the connections forwarded
        self.refused: list[float] = []  # ... and of those turned away while down
        self.cuts: list[float] = []
        self._down = False
        self._pairs: dict[int, list] = {}  # id -> [client, server, pumps still running]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> int:
        """Drop every open connection now; the number dropped."""
        with self._lock:
            pairs = list(self._pairs.values())
            self.cuts.append(time.monotonic())
        for pair in pairs:
            _shutdown(pair[0], pair[1])
        return len(pairs)

    def go_down(self) -> int:
        """Cut every connection and reset every later one (the server stays unreachable)."""
        with self._lock:
            self._down = True
        return self.cut()

    def close(self) -> None:
        self.go_down()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                down = self._down
                (self.refused if down else self.accepted).append(time.monotonic())
            if down:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            key = id(client)
            with self._lock:
                self._pairs[key] = [client, server, 2]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(key, source, sink), daemon=True).start()

    def _pump(self, key: int, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _shutdown(source, sink)  # one side gone: the other goes too
        with self._lock:
            pair = self._pairs[key]
            pair[2] -= 1
            last = pair[2] == 0
            if last:
                del self._pairs[key]
        if last:  # both pumps stopped: nothing uses the sockets any more
            source.close()
            sink.close()


def _shutdown(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset: the client's connect fails at once."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
