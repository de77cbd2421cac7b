"""OpenAIBackend against a real chat-completions server on loopback (http.server in a thread; no mocks)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.loopback import api_root, serve_posts
from tunewise.errors import BackendError
from tunewise.models.base import Backend, GenerationConfig
from tunewise.models.openai import OpenAIBackend


@dataclass
class Scripted:
    """A canned reply: status, body (dict -> JSON, str -> raw), headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeOpenAI:
    """Speaks ``POST /v1/chat/completions``: replays ``script`` in order, then echoes the last user message."""

    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.delay_s = 0.0
        self.usage = True
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = serve_posts(self.handle)
        self.base_url = api_root(self.httpd)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        with self.lock:
            self.requests.append((body, dict(request.headers)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            reply = self.script.pop(0) if self.script else None
        try:
            if reply is None:
                reply = Scripted(body=self.echo(body), delay_s=self.delay_s)
            time.sleep(reply.delay_s)
            payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = payload.encode()
            request.send_response(reply.status)
            for key, value in reply.headers.items():
                request.send_header(key, value)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        finally:
            with self.lock:
                self.in_flight -= 1

    def echo(self, body: dict[str, Any]) -> dict[str, Any]:
        text = "echo: " + body["messages"][-1]["content"]
        choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        reply: dict[str, Any] = {"choices": [choice]}
        if self.usage:
            reply["usage"] = {"prompt_tokens": 7 * len(body["messages"]), "completion_tokens": len(text.split())}
        return reply

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


def _backend(server: FakeOpenAI, **kwargs: Any) -> OpenAIBackend:
    options: dict[str, Any] = {"model": "gpt-test", "backoff_s": 0.01, "timeout_s": 5.0, **kwargs}
    return OpenAIBackend(base_url=server.base_url, **options)


def _convs(n: int) -> list[list[dict[str, str]]]:
    system = {"role": "system", "content": "Be brief."}
    return [[system, {"role": "user", "content": f"question {i}"}] for i in range(n)]


def test_generates_in_order_with_usage_latency_and_progress(server: FakeOpenAI) -> None:
    backend: Backend = _backend(server, concurrency=3)
    assert not backend.self_hosted and backend.name == "gpt-test"
    calls: list[int] = []
    completions = backend.generate(_convs(7), GenerationConfig(max_new_tokens=33), progress=calls.append)
    assert [c.text for c in completions] == [f"echo: question {i}" for i in range(7)]
    assert all(c.prompt_tokens == 14 and c.completion_tokens == 3 and c.latency_ms > 0 for c in completions)
    assert calls == [1] * 7
    body, headers = server.requests[0]
    assert body["model"] == "gpt-test" and body["temperature"] == 0 and body["max_tokens"] == 33
    assert "response_format" not in body and "authorization" not in {k.lower() for k in headers}
    assert backend.estimated_usage == 0 and not any(c.tokens_estimated for c in completions)
    backend.close()


def test_json_schema_becomes_a_strict_response_format(server: FakeOpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    _backend(server).generate(_convs(1), GenerationConfig(json_schema=schema))
    assert server.requests[0][0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


def test_api_key_from_the_named_variable(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TW_TEST_KEY", "sk-secret")
    _backend(server, api_key_env="TW_TEST_KEY").generate(_convs(1), GenerationConfig())
    assert server.requests[0][1]["Authorization"] == "Bearer sk-secret"
    monkeypatch.delenv("TW_TEST_KEY")
    with pytest.raises(BackendError, match="TW_TEST_KEY"):
        _backend(server, api_key_env="TW_TEST_KEY").generate(_convs(1), GenerationConfig())


def test_retries_429_and_500_then_succeeds(server: FakeOpenAI) -> None:
    server.script = [
        Scripted(429, {"error": "slow down"}, headers={"Retry-After": "0"}),
        Scripted(500, {"error": "oops"}),
        Scripted(503, "upstream down"),
    ]
    completions = _backend(server, max_retries=3).generate(_convs(1), GenerationConfig())
    assert completions[0].text == "echo: question 0"
    assert len(server.requests) == 4


class FakeClock:
    """Stands in for the backend's ``time``: sleeping only moves the clock, and every wait is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_retry_after_is_honoured(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr("tunewise.models.openai.time", clock)
    server.script = [Scripted(429, {"error": "rate"}, headers={"Retry-After": "7"})]
    completions = _backend(server, backoff_s=0.0).generate(_convs(1), GenerationConfig())
    assert clock.waits == [7.0]  # the server's hint, not the (zero) backoff
    assert completions[0].latency_ms == 7000.0  # latency includes the retries


def test_gives_up_after_max_retries_naming_url_status_and_body(server: FakeOpenAI) -> None:
    server.script = [Scripted(503, {"error": "overloaded right now"}) for _ in range(3)]
    with pytest.raises(BackendError) as caught:
        _backend(server, max_retries=2).generate(_convs(1), GenerationConfig())
    assert caught.value.status == 503 and caught.value.url == f"{server.base_url}/chat/completions"
    assert "overloaded right now" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert len(server.requests) == 3


def test_401_fails_at_once(server: FakeOpenAI) -> None:
    server.script = [Scripted(401, {"error": {"message": "invalid api key"}}) for _ in range(5)]
    with pytest.raises(BackendError, match="invalid api key") as caught:
        _backend(server, max_retries=4).generate(_convs(1), GenerationConfig())
    assert caught.value.status == 401
    assert len(server.requests) == 1


def test_timeout_is_retried_then_reported(server: FakeOpenAI) -> None:
    server.script = [Scripted(body=server.echo({"messages": [{"content": "late"}]}), delay_s=1.0)]
    completions = _backend(server, timeout_s=0.3, max_retries=1).generate(_convs(1), GenerationConfig())
    assert completions[0].text == "echo: question 0"  # the retry got the fast default reply
    server.delay_s = 1.0
    with pytest.raises(BackendError, match="timed out"):
        _backend(server, timeout_s=0.3, max_retries=1).generate(_convs(1), GenerationConfig())


def test_concurrency_is_bounded(server: FakeOpenAI) -> None:
    server.delay_s = 0.1
    completions = _backend(server, concurrency=3).generate(_convs(12), GenerationConfig())
    assert len(completions) == 12
    assert server.max_in_flight == 3


def test_unreachable_endpoint_names_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        backend = OpenAIBackend(base_url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=1, backoff_s=0.01)
        with pytest.raises(BackendError, match=f"127.0.0.1:{port}/v1/chat/completions.*unreachable"):
            backend.generate(_convs(1), GenerationConfig())


def test_missing_usage_is_estimated_and_counted(server: FakeOpenAI) -> None:
    server.usage = False
    backend = _backend(server)
    completion = backend.generate(_convs(2), GenerationConfig())[0]
    assert completion.completion_tokens == backend.count_tokens("echo: question 0") == 4
    assert completion.prompt_tokens == backend.count_tokens("Be brief.") + backend.count_tokens("question 0")
    assert backend.estimated_usage == 2 and completion.tokens_estimated


def test_malformed_body_is_retried_then_a_backend_error(server: FakeOpenAI) -> None:
    server.script = [Scripted(200, '{"choices": [{"mess'), Scripted(200, "<html>not json</html>")]
    with pytest.raises(BackendError, match=r"malformed.*not json"):
        _backend(server, max_retries=1).generate(_convs(1), GenerationConfig())
    assert len(server.requests) == 2
    server.script = [Scripted(200, '{"choices": [{"mess')]  # truncated once, then answered
    assert _backend(server, max_retries=1).generate(_convs(1), GenerationConfig())[0].text


def test_identity_and_validation() -> None:
    backend = OpenAIBackend(base_url="http://h/v1/", model="m")
    assert backend.identity() == {"backend": "openai", "base_url": "http://h/v1", "model": "m"}
    assert backend.generate([], GenerationConfig()) == []
    with pytest.raises(ValueError):
        OpenAIBackend(base_url="", model="m")


class EchoAuthHandler(BaseHTTPRequestHandler):
    """A careless endpoint: its 400 echoes the request's ``Authorization`` header, and the bare key in it."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        auth = self.headers.get("Authorization", "")
        body = json.dumps({"error": {"message": f"bad request with {auth}", "key": auth.removeprefix("Bearer ")}})
        data = body.encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("key", ["sk-live-0123456789abcdef", "plain-key-no-prefix-42"])
def test_an_echoed_api_key_is_redacted_from_errors_and_logs(
    key: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EchoAuthHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    monkeypatch.setenv("TW_TEST_KEY", key)
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    try:
        backend = OpenAIBackend(base_url=base_url, model="m", api_key_env="TW_TEST_KEY", backoff_s=0.01, timeout_s=5.0)
        with caplog.at_level("DEBUG"), pytest.raises(BackendError) as info:
            backend.generate(_convs(1), GenerationConfig())
    finally:
        httpd.shutdown()
        httpd.server_close()
    message = str(info.value)
    assert "HTTP 400" in message and "bad request with Bearer ***" in message  # the body is still shown
    assert key not in message and key not in caplog.text
