"""Other services on the orchestrator's port: a plain HTTP server answering every request with one status
and a web page, and a server that does not speak HTTP at all."""

from __future__ import annotations

import http.server
import socket
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


class BannerServer:
    """Another service that is not HTTP at all: writes ``banner`` to each connection (an SSH server's greeting)."""

    def __init__(self, banner: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)  # so that serve() sees stop() soon
        self.port = self.listener.getsockname()[1]
        self.banner = banner
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, name="test-banner-server", daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.sendall(self.banner)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(WAIT)
        self.listener.close()


@pytest.fixture(name="banner_server")
def banner_server_fixture() -> Iterator[Callable[[bytes], BannerServer]]:
    """Factory: ``banner_server(banner)``; every one stopped after the test."""
    started: list[BannerServer] = []

    def start(banner: bytes) -> BannerServer:
        server = BannerServer(banner)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
