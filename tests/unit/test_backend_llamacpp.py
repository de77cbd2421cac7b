"""LlamaCppBackend against a stand-in ``llama-server`` (a small Python HTTP server started as the real one would be).

The stand-in answers ``/health``, ``/tokenize`` and ``/v1/chat/completions`` with the echo of the last message
after a random delay (so answers finish out of order), and reports the request bodies and the most requests it had
in flight at once. The real engine on the embedded model is tested in tests/integration/test_llamacpp_backend.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from tunewise.config import ModelSpec
from tunewise.errors import BackendError
from tunewise.models import llamacpp as llamacpp_module
from tunewise.models.base import GenerationConfig
from tunewise.models.llamacpp import LlamaCppBackend
from tunewise.models.local import LocalBackend
from tunewise.models.registry import create_backend

FAKE_SERVER = textwrap.dedent(
    """
    import json, random, sys, threading, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    argv = sys.argv[1:]
    port = int(argv[argv.index("--port") + 1])
    loras = [argv[i + 1] for i, a in enumerate(argv) if a == "--lora"]
    state = {"in_flight": 0, "peak": 0, "bodies": []}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok"})
            elif self.path == "/stats":
                self.reply(200, {"peak": state["peak"], "bodies": state["bodies"], "argv": argv})
            else:
                self.reply(404, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/tokenize":
                return self.reply(200, {"tokens": list(range(len(body["content"].split())))})
            with lock:
                state["in_flight"] += 1
                state["peak"] = max(state["peak"], state["in_flight"])
                state["bodies"].append(body)
            time.sleep(random.uniform(0.0, 0.05))
            with lock:
                state["in_flight"] -= 1
            text = body["messages"][-1]["content"]
            if text == "crash":
                import os
                os._exit(3)
            if text == "too long":
                return self.reply(400, {"error": {"message": "the request exceeds the available context size"}})
            if body.get("lora"):
                text = f"adapted {text}"
            if "response_format" in body:
                text = json.dumps({"echo": text})
            words = text.split()
            finish = "length" if len(words) > body["max_tokens"] else "stop"
            usage = {"prompt_tokens": 10 + len(body["messages"][-1]["content"]), "completion_tokens": len(words)}
            self.reply(200, {"choices": [{"message": {"content": text}, "finish_reason": finish}], "usage": usage})

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


@pytest.fixture
def fake_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in llama-server executable; GGUF conversion replaced by two placeholder files."""
    script = tmp_path / "llama-server"
    script.write_text(f"#!{sys.executable}\n{FAKE_SERVER}")
    script.chmod(0o755)
    monkeypatch.setenv("TUNEWISE_LLAMA_SERVER", str(script))
    (tmp_path / "base.gguf").write_bytes(b"base weights")
    (tmp_path / "lora.gguf").write_bytes(b"lora weights")
    monkeypatch.setattr(llamacpp_module, "base_gguf", lambda base: tmp_path / "base.gguf")
    monkeypatch.setattr(llamacpp_module, "lora_gguf", lambda adapter, base: tmp_path / "lora.gguf")
    return script


def _conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def _stats(backend: LlamaCppBackend) -> dict:
    import httpx

    assert backend._server is not None
    return httpx.get(f"{backend._server.process.url}/stats").json()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A stopped child that nobody reaped yet is a zombie: gone for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.is_file() and "zombie" in status.read_text()


def test_results_come_back_in_input_order_with_requests_in_parallel(fake_server: Path) -> None:
    backend = LlamaCppBackend("base-model", parallel=4)
    try:
        texts = [f"prompt number {i}" for i in range(24)]
        done: list[int] = []
        completions = backend.generate(
            [_conversation(t) for t in texts], GenerationConfig(max_new_tokens=8), done.append
        )
        assert [c.text for c in completions] == texts
        assert [c.prompt_tokens for c in completions] == [10 + len(t) for t in texts]
        assert all(c.completion_tokens == 3 and c.finish_reason == "stop" and c.latency_ms > 0 for c in completions)
        assert sum(done) == len(texts)
        stats = _stats(backend)
        assert 2 <= stats["peak"] <= 4  # requests overlap, never more than the slots
        argv = stats["argv"]
        assert argv[argv.index("--parallel") + 1] == "4" and "--lora" not in argv
        body = stats["bodies"][0]
        assert body["temperature"] == 0 and body["max_tokens"] == 8 and body["lora"] == []
        assert "response_format" not in body
    finally:
        backend.close()


def test_finish_reason_length_and_the_json_schema_becomes_a_response_format(fake_server: Path) -> None:
    backend = LlamaCppBackend("base-model", parallel=2)
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
    try:
        [cut] = backend.generate([_conversation("one two three four")], GenerationConfig(max_new_tokens=2))
        assert cut.finish_reason == "length"
        [structured] = backend.generate([_conversation("hi")], GenerationConfig(json_schema=schema))
        assert json.loads(structured.text) == {"echo": "hi"}
        sent = _stats(backend)["bodies"][-1]["response_format"]
        assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema
    finally:
        backend.close()


def test_an_adapter_is_loaded_unapplied_and_applied_per_request(fake_server: Path, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    backend = LlamaCppBackend("base-model", adapter=adapter)
    try:
        [completion] = backend.generate([_conversation("hello")], GenerationConfig())
        assert completion.text == "adapted hello"
        stats = _stats(backend)
        assert stats["argv"][stats["argv"].index("--lora") + 1] == str(tmp_path / "lora.gguf")
        assert "--lora-init-without-apply" in stats["argv"]
        assert stats["bodies"][0]["lora"] == [{"id": 0, "scale": 1.0}]
    finally:
        backend.close()


def test_a_missing_adapter_directory_is_a_backend_error(fake_server: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="adapter directory not found"):
        LlamaCppBackend("base-model", adapter=tmp_path / "nowhere").generate([_conversation("x")], GenerationConfig())


def test_count_tokens_asks_the_server(fake_server: Path) -> None:
    backend = LlamaCppBackend("base-model")
    try:
        assert backend.count_tokens("three small words") == 3
    finally:
        backend.close()


def test_a_refused_request_is_a_backend_error_naming_the_reason(fake_server: Path) -> None:
    backend = LlamaCppBackend("base-model")
    try:
        with pytest.raises(BackendError, match=r"HTTP 400.*exceeds the available context size"):
            backend.generate([_conversation("fine"), _conversation("too long")], GenerationConfig())
    finally:
        backend.close()


def test_a_crashed_server_is_reported_then_started_again(fake_server: Path) -> None:
    backend = LlamaCppBackend("base-model", parallel=1)
    try:
        with pytest.raises(BackendError, match="unreachable"):
            backend.generate([_conversation("crash")], GenerationConfig())
        first = backend._server.process.pid if backend._server else None
        [completion] = backend.generate([_conversation("again")], GenerationConfig())
        assert completion.text == "again" and backend.pid not in (None, first)
    finally:
        backend.close()


def test_close_and_garbage_collection_stop_the_server(fake_server: Path) -> None:
    import gc

    backend = LlamaCppBackend("base-model")
    backend.generate([_conversation("x")], GenerationConfig())
    pid = backend.pid
    assert pid is not None
    log = backend._server.log if backend._server else None
    backend.close()
    assert _gone(pid) and backend.pid is None and log is not None and not log.exists()

    backend = LlamaCppBackend("base-model")
    backend.generate([_conversation("x")], GenerationConfig())
    pid = backend.pid
    assert pid is not None
    del backend
    gc.collect()
    assert _gone(pid)


def test_the_server_is_stopped_at_interpreter_exit(fake_server: Path) -> None:
    code = textwrap.dedent(
        """
        from pathlib import Path
        from tunewise.models import llamacpp
        from tunewise.models.base import GenerationConfig
        here = Path(__import__("sys").argv[1])
        llamacpp.base_gguf = lambda base: here / "base.gguf"
        backend = llamacpp.LlamaCppBackend("base-model")
        backend.generate([[{"role": "user", "content": "x"}]], GenerationConfig())
        print(backend.pid)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(fake_server.parent)], capture_output=True, text=True, timeout=60, check=True
    )
    assert _gone(int(done.stdout.strip()))


def test_identity_names_the_engine_and_the_files(fake_server: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    plain = LlamaCppBackend("base-model").identity()
    assert plain["engine"] == "llamacpp" and plain["lora_sha256"] is None and plain["gguf_sha256"]
    assert plain["llama_cpp"].startswith("sha256:")  # $TUNEWISE_LLAMA_SERVER: the binary's hash
    adapted = LlamaCppBackend("base-model", adapter=adapter).identity()
    assert adapted["lora_sha256"] and adapted["gguf_sha256"] == plain["gguf_sha256"]
    assert LocalBackend(tiny_model_dir).identity() != LlamaCppBackend(tiny_model_dir).identity()


def test_the_local_factory_picks_the_engine(fake_server: Path) -> None:
    spec = ModelSpec(backend="local", path="smollm2-135m", engine="llamacpp", concurrency=6)
    backend = create_backend("fast", spec)
    assert isinstance(backend, LlamaCppBackend) and backend.parallel == 6 and backend.name == "fast"
    assert backend.timeout_s == 600.0  # the spec's 60 s default is an HTTP API's
    assert isinstance(create_backend("slow", ModelSpec(backend="local", path="smollm2-135m")), LocalBackend)


def test_engine_is_rejected_for_models_that_are_not_local() -> None:
    with pytest.raises(ValidationError, match="engine: llamacpp applies to local models only"):
        ModelSpec(backend="openai", base_url="http://x/v1", model="m", engine="llamacpp")
    assert ModelSpec().engine == "transformers"


def test_parallel_must_be_positive() -> None:
    with pytest.raises(ValueError, match="parallel"):
        LlamaCppBackend("base-model", parallel=0)
