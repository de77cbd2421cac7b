"""A hosted teacher on loopback that misbehaves on purpose, and keeps the books of what it charged.

It answers ``POST /v1/chat/completions`` with the label its rule gives the last user message, bills every request it
processes (``usage`` at the configured prices), and honours ``Idempotency-Key`` the way payment APIs do: a key it
has processed is answered again from its store, without a second charge. Faults are injected per key on the first
attempts: 429 with ``Retry-After``, 500, a timeout (processed and billed, then too slow), a truncated body
(processed and billed, cut on the wire), a non-JSON error page, a connection reset.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import api_root, serve_posts

FAULTS = ("429", "500", "timeout", "truncated", "nonjson", "reset")


class TeacherServer:
    def __init__(
        self,
        answer: Callable[[str], str],
        *,
        faults: Callable[[int], list[str]] | None = None,
        price_in_per_1m: float = 1000.0,
        price_out_per_1m: float = 2000.0,
        delay_s: float = 0.0,
        timeout_sleep_s: float = 1.0,
    ) -> None:
        self.answer = answer
        self.faults = faults or (lambda index: [])
        self.prices = (price_in_per_1m, price_out_per_1m)
        self.delay_s = delay_s
        self.timeout_sleep_s = timeout_sleep_s
        self.lock = threading.Lock()
        self.requests = 0
        self.attempts: dict[str, int] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.charged: dict[str, float] = {}
        """key -> dollars billed (once per key: replays are free)."""
        self.order: dict[str, int] = {}
        self.httpd = serve_posts(self.handle, keep_alive=True)
        self.base_url = api_root(self.httpd)

    @property
    def usd(self) -> float:
        return sum(self.charged.values())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _process(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer and bill a request once per key; a known key is replayed from the store, unbilled."""
        with self.lock:
            if key in self.stored:
                return self.stored[key]
        user = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        text = self.answer(user)
        prompt_tokens = sum(len(m["content"].split()) + 4 for m in body["messages"])
        completion_tokens = len(text.split()) + 1
        reply = {
            "id": f"chatcmpl-{len(self.stored)}",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        with self.lock:
            if key not in self.stored:
                self.stored[key] = reply
                self.charged[key] = (prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]) / 1e6
            return self.stored[key]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        key = request.headers.get("Idempotency-Key") or json.dumps(body["messages"])
        with self.lock:
            self.requests += 1
            attempt = self.attempts.get(key, 0)
            self.attempts[key] = attempt + 1
            index = self.order.setdefault(key, len(self.order))
        planned = self.faults(index)
        fault = planned[attempt] if attempt < len(planned) else None
        try:
            if fault == "429":
                return self._send(request, 429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
            if fault == "500":
                return self._send(request, 500, b'{"error": {"message": "overloaded"}}')
            if fault == "nonjson":
                return self._send(request, 200, b"<html>502 Bad Gateway</html>")
            if fault == "reset":
                request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                request.connection.close()
                request.close_connection = True
                return None
            reply = self._process(key, body)
            if self.delay_s:
                time.sleep(self.delay_s)
            data = json.dumps(reply).encode()
            if fault == "timeout":
                time.sleep(self.timeout_sleep_s)
            if fault == "truncated":
                request.send_response(200)
                request.send_header("Content-Type", "application/json")
                request.send_header("Content-Length", str(len(data)))
                request.end_headers()
                request.wfile.write(data[: len(data) // 2])
                request.wfile.flush()
                request.connection.shutdown(socket.SHUT_RDWR)
                request.close_connection = True
                return None
            return self._send(request, 200, data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return None  # the client gave up (timeout)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
