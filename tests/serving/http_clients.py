"""Clients that write a whole request body before reading the answer, as users' code does:
`requests`, `urllib.request` and a raw socket (none sends `Expect: 100-continue` unless told).

Each returns an `Answer`; a connection reset (while writing or reading) is raised, never hidden.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import requests

CHUNK = 64 * 1024
TIMEOUT_S = 30


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def chunks(body: bytes) -> Iterator[bytes]:
    """The body as an iterable: `requests` and `urllib` then send it chunked (no Content-Length)."""
    return (body[i : i + CHUNK] for i in range(0, len(body), CHUNK))


def with_requests(url: str, body: bytes, method: str = "POST", chunked: bool = False, headers=None) -> Answer:
    response = requests.request(
        method,
        url,
        data=chunks(body) if chunked else body,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=TIMEOUT_S,
    )
    return Answer(response.status_code, response.headers.get("Content-Type", ""), response.content)


def with_urllib(url: str, body: bytes, method: str = "POST", chunked: bool = False, headers=None) -> Answer:
    request = urllib.request.Request(
        url,
        data=chunks(body) if chunked else body,
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return Answer(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("Content-Type", ""), error.read())


def raw_request(
    url: str, body: bytes, method: str = "POST", chunked: bool = False, expect: bool = False, headers=None
) -> tuple[bytes, bytes]:
    """The request's head and its body as bytes on the wire (chunked: the whole chunked encoding)."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks(body)) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        wire = body
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), wire


def parse(received: bytes) -> Answer | None:
    """The answer in these bytes, or None while its head or body (Content-Length) is incomplete."""
    head, separator, content = received.partition(b"\r\n\r\n")
    if not separator:
        return None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    if len(content) < int(fields.get("content-length", "0")):
        return None
    return Answer(int(status_line.split()[1]), fields.get("content-type", ""), content)


def read_answer(connection: socket.socket, received: bytes = b"", until_close: bool = True) -> Answer:
    """The answer; with `until_close`, read on until the server closes: a reset raises
    ConnectionResetError (the clean end is a FIN)."""
    while until_close or parse(received) is None:
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    answer = parse(received)
    assert answer is not None, received[:300]
    return answer


def with_socket(
    url: str, body: bytes, method: str = "POST", chunked: bool = False, expect: bool = False, headers=None
) -> Answer:
    """Write the whole request, then read the answer; with `expect`, wait for 100 Continue first."""
    head, wire = raw_request(url, body, method, chunked, expect, headers)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT_S) as connection:
        received = b""
        if expect:
            connection.sendall(head)
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            interim, _, received = received.partition(b"\r\n\r\n")  # the answer may follow at once
            assert interim.startswith(b"HTTP/1.1 100"), interim[:100]
            connection.sendall(wire)
        else:
            connection.sendall(head + wire)
        return read_answer(connection, received)


#: Every way of sending a body: `client(url, body, method, headers=...) -> Answer`.
CLIENTS = {
    "requests": with_requests,
    "requests-chunked": partial(with_requests, chunked=True),
    "urllib": with_urllib,
    "urllib-chunked": partial(with_urllib, chunked=True),
    "socket": with_socket,
    "socket-chunked": partial(with_socket, chunked=True),
    "socket-expect-100": partial(with_socket, expect=True),
}


def assert_413(answer: Answer, limit: int, where: str) -> None:
    """The service's JSON 413, naming its limit."""
    assert answer.status == 413, (where, answer.status, answer.body[:200])
    assert answer.content_type.startswith("application/json"), (where, answer.content_type)
    assert json.loads(answer.body)["error"] == f"request body larger than {limit} bytes", where
