"""Another service on the orchestrator's port: a plain HTTP server on loopback, answering every request with one status and a web page."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator

import pytest

WAIT = 60.0
PAGE = b"<!doctype html><html><head><title>Not here</title></head><body>" + b"lorem ipsum " * 200 + b"</body></html>"


class WebServer:
    """Another service on the port: a plain HTTP server answering every request with ``status`` and a page."""

    def __init__(self, status: int, port: int = 0) -> None:
        answer = status
        self.requested = requested = threading.Event()  # set at the first request

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                requested.set()
                self.send_response(answer)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(PAGE)))
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-web-server", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)


@pytest.fixture(name="web_server")
def web_server_fixture() -> Iterator[Callable[..., WebServer]]:
    """Factory: ``web_server(status, port=0)``; every one stopped after the test."""
    started: list[WebServer] = []

    def start(status: int, port: int = 0) -> WebServer:
        server = WebServer(status, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
