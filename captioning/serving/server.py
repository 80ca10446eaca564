"""The uvicorn server of ``captioning serve``, with a deadline for each request to arrive,
headers and body: slow clients are cut off.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``): a client that
connects and sends nothing, or sends its headers or its upload 1 byte per second, holds a
connection (and, for an upload, a request's memory) as long as it likes, and enough of them
exhaust the server. An ASGI middleware cannot help with the headers (the app is not called
before they are complete), so the deadline is kept by the HTTP protocol itself: uvicorn's h11
protocol with a timer that starts when the connection opens or a request's first byte arrives,
and stops when the request has fully arrived (the time spent captioning does not count). When
it fires, the client gets ``408 Request Timeout`` (if no answer has started) and the
connection is closed; a handler reading the upload sees the client disconnect. The server
always speaks h11 (httptools, when installed, is not used); the protocol leans on
``H11Protocol``'s attributes (``conn``, ``cycle``, ``transport``, ``loop``), which
tests/test_serve.py's slow clients check on the installed uvicorn.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds for a request to arrive (``serve --request-timeout``)
TIMEOUT_HEAD = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n"
)


def deadline_protocol(timeout: float):
    """uvicorn's h11 protocol class with a ``timeout``-second deadline per request (see the
    module doc); pass it as ``uvicorn.Config(http=...)``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if timeout <= 0:
        raise ValueError("--request-timeout must be > 0")

    class DeadlineProtocol(H11Protocol):
        """H11Protocol whose client must deliver each request within ``timeout`` seconds."""

        deadline = None  # the armed timer (asyncio.TimerHandle) or None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self.arm()  # a connection that sends nothing is a slow client too

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self.follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()  # may start a pipelined request already received
            self.follow()

        def connection_lost(self, exc) -> None:
            self.disarm()
            super().connection_lost(exc)

        def follow(self) -> None:
            """Armed while a request is arriving; disarmed once it has arrived."""
            state = self.conn.their_state
            started = state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0])
            if started:
                self.arm()
            elif state is not h11.IDLE:  # DONE, or the connection is ending
                self.disarm()

        def arm(self) -> None:
            if self.deadline is None:
                self.deadline = self.loop.call_later(timeout, self.expire)

        def disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def expire(self) -> None:
            """The deadline passed: answer 408 unless an answer has begun, and close."""
            self.deadline = None
            if self.transport.is_closing():
                return
            # IDLE: the next request's headers are still arriving, no answer can have begun
            if self.conn.their_state is h11.IDLE or not self.cycle.response_started:
                body = b'{"error": "request not received within %gs"}' % timeout
                self.transport.write(TIMEOUT_HEAD % len(body) + body)
            self.transport.close()

    return DeadlineProtocol


def server_config(app, request_timeout: float = DEFAULT_REQUEST_TIMEOUT, **options):
    """uvicorn's config for ``app``: its h11 protocol, with a deadline of ``request_timeout``
    seconds for each request to arrive (``deadline_protocol``)."""
    import uvicorn

    return uvicorn.Config(app, http=deadline_protocol(request_timeout), **options)


@contextmanager
def running(app, host: str = "127.0.0.1", request_timeout: float = DEFAULT_REQUEST_TIMEOUT):
    """Serve ``app`` with uvicorn on a free port of ``host`` in a background thread (tests and
    benchmarks); yields the base URL and stops the server after."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, request_timeout, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
