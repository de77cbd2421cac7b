"""An HTTP server on 127.0.0.1 (a free port), serving from a daemon thread: the loopback endpoints tests talk to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_posts(handle: Callable[[BaseHTTPRequestHandler], None], *, keep_alive: bool = False) -> ThreadingHTTPServer:
    """Start a server that passes every POST request to ``handle``; ``keep_alive``: HTTP/1.1 connections.

    Stop it with ``shutdown()`` and ``server_close()``; its API root is :func:`api_root`.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            handle(self)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()
    return httpd


def api_root(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"
