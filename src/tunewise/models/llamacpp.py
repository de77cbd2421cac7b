"""The ``local`` backend on the llama.cpp engine (``engine: llamacpp``): one ``llama-server`` child process.

The server runs the base model's GGUF (:func:`~tunewise.models.gguf_files.base_gguf`) and, for a fine-tune, its
adapter as a GGUF LoRA whose scale every request sets. Each conversation is one greedy chat completion
(``temperature: 0``; a ``json_schema`` becomes a grammar-enforced ``response_format``); ``parallel`` requests are in
flight at once and the server decodes them together (continuous batching over its slots).

Outputs are close to the transformers backend's but not always equal: the embedded model runs with llama.cpp's
quantized kernels, and a batch's composition changes the arithmetic slightly, so a near-tie between two tokens can
break either way. :meth:`LlamaCppBackend.identity` therefore names the engine, and the prediction cache never mixes
the two. The server is started on first use and stopped by :meth:`LlamaCppBackend.close`, when the backend is
garbage-collected, or at interpreter exit.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import httpx

from tunewise.errors import BackendError
from tunewise.llamacpp.build import SERVER_ENV, build_id, llama_server_binary
from tunewise.llamacpp.server import ServerPlan, ServerProcess
from tunewise.models.base import GenerationConfig, ProgressCallback
from tunewise.models.gguf_files import base_gguf, lora_gguf
from tunewise.models.local import _HashCache
from tunewise.records import Completion, Message

_BODY_EXCERPT = 300


class LlamaCppBackend:
    """A base model (embedded name or HF directory), optionally with a PEFT adapter, served by ``llama-server``."""

    self_hosted = True

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        name: str | None = None,
        parallel: int = 4,
        context_per_slot: int = 4096,
        threads: int | None = None,
        timeout_s: float = 600.0,
        start_timeout_s: float = 300.0,
    ) -> None:
        """Describe the model; nothing is converted or started until the first :meth:`generate`.

        Args:
            path: An embedded model name (``smollm2-135m``) or a Hugging Face model directory.
            adapter: A PEFT LoRA adapter directory for ``path``; converted once to a GGUF LoRA.
            name: The name shown in reports; defaults to ``path``.
            parallel: The server's slots: requests decoded together, and requests this backend keeps in flight.
            context_per_slot: Tokens (prompt + completion) one request may use.
            threads: CPU threads of the server; default: every core this process may run on.
            timeout_s: Per-request timeout.
            start_timeout_s: How long the server may take to load the model and answer ``/health``.

        Raises:
            ValueError: ``parallel`` or ``context_per_slot`` < 1.
        """
        if parallel < 1 or context_per_slot < 1:
            raise ValueError(f"parallel and context_per_slot must be >= 1, got {parallel} and {context_per_slot}")
        self.path = str(path)
        self.adapter = str(adapter) if adapter is not None else None
        self.name = name or self.path
        self.parallel = parallel
        self.context_per_slot = context_per_slot
        self.threads = threads
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self._files: tuple[Path, Path | None] | None = None
        self._identity: dict[str, Any] | None = None
        self._server: _Server | None = None
        self._lock = threading.Lock()

    # -- the server ----------------------------------------------------------------------------------------------

    def gguf_files(self) -> tuple[Path, Path | None]:
        """The base GGUF and the adapter's GGUF LoRA (``None`` without an adapter), converted once and cached.

        Raises:
            BackendError: the adapter directory does not exist.
            LlamaCppError: a conversion failed.
        """
        if self._files is None:
            if self.adapter is not None and not Path(self.adapter).is_dir():
                raise BackendError(f"adapter directory not found: {self.adapter}")
            base = base_gguf(self.path)
            lora = lora_gguf(Path(self.adapter), self.path) if self.adapter is not None else None
            self._files = (base, lora)
        return self._files

    def _running(self) -> _Server:
        """The server, started now if it is not running (again, if it died)."""
        with self._lock:
            if self._server is None or not self._server.process.alive():
                if self._server is not None:
                    self._server.finalizer()
                self._server = self._start()
            return self._server

    def _start(self) -> _Server:
        base, lora = self.gguf_files()
        plan = ServerPlan(
            binary=llama_server_binary(announce=_announce),
            model=base,
            loras=(lora,) if lora is not None else (),
            parallel=self.parallel,
            context_per_slot=self.context_per_slot,
            threads=self.threads,
        )
        handle, log = tempfile.mkstemp(prefix="tunewise-llama-server-", suffix=".log")
        os.close(handle)
        process = ServerProcess(plan, log_file=Path(log))
        try:
            process.start(self.start_timeout_s)
        except BaseException:
            process.stop()
            Path(log).unlink(missing_ok=True)
            raise
        limits = httpx.Limits(max_connections=self.parallel + 1, max_keepalive_connections=self.parallel + 1)
        client = httpx.Client(base_url=process.url, timeout=httpx.Timeout(self.timeout_s, connect=5.0), limits=limits)
        server = _Server(process, client, Path(log))
        # Not a method of self: the finalizer must not keep the backend alive. It also runs at interpreter exit.
        server.finalizer = weakref.finalize(self, _shutdown, process, client, Path(log))
        return server

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        server = self._server
        return server.process.pid if server is not None and server.process.alive() else None

    def close(self) -> None:
        """Stop the server (a later :meth:`generate` starts a new one)."""
        with self._lock:
            if self._server is not None:
                self._server.finalizer()
                self._server = None

    # -- the Backend protocol -------------------------------------------------------------------------------------

    def generate(
        self,
        conversations: list[list[Message]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        """Send one chat completion per conversation, ``parallel`` at a time; results in input order.

        Args:
            conversations: Chat conversations (OpenAI-style messages), each ending where the model should answer.
            config: ``max_new_tokens`` and an optional ``json_schema`` (a grammar); ``batch_size`` does not apply
                (``parallel`` is the backend's setting).
            progress: Called with 1 after each finished conversation.

        Returns:
            One :class:`Completion` per conversation; ``latency_ms`` is that request's wall time, with the other
            requests in flight at the same time.

        Raises:
            BackendError: the server cannot start, died, or refused a request (e.g. a prompt longer than
                ``context_per_slot``, or a schema it cannot turn into a grammar).
            LlamaCppError: a GGUF conversion or the ``llama-server`` build failed.
        """
        if not conversations:
            return []
        if config.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        server = self._running()
        results: list[Completion | None] = [None] * len(conversations)
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="tunewise-llamacpp")
        failed = True
        try:
            futures = {
                pool.submit(self._complete, server, conversation, config): index
                for index, conversation in enumerate(conversations)
            }
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
            failed = False
        finally:
            # On the first failure, drop the queued requests and report now; requests in flight run out alone.
            pool.shutdown(wait=not failed, cancel_futures=True)
        return [r for r in results if r is not None]

    def identity(self) -> dict[str, Any]:
        """The engine, its build, and the SHA-256 of the GGUF files it runs (never equal to the transformers
        backend's identity, so cached predictions of one engine are never served as the other's).

        Converts the files on first use (cached on disk); hashes are cached in memory and on disk.
        """
        if self._identity is None:
            base, lora = self.gguf_files()
            binary = os.environ.get(SERVER_ENV)
            hashes = _HashCache.load()
            self._identity = {
                "backend": "local",
                "engine": "llamacpp",
                "llama_cpp": f"sha256:{hashes.sha256(Path(binary))}" if binary else build_id(),
                "gguf_sha256": hashes.sha256(base),
                "lora_sha256": hashes.sha256(lora) if lora is not None else None,
            }
            hashes.save()
        return self._identity

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the GGUF's tokenizer (llama-server's ``/tokenize``; no special tokens added,
        special-token text such as ``<|im_end|>`` counted as that one token, as the transformers tokenizer does).

        Raises:
            BackendError: the server cannot start or refused the request.
        """
        server = self._running()
        body = self._post(server, "/tokenize", {"content": text, "add_special": False})
        tokens = body.get("tokens")
        if not isinstance(tokens, list):
            raise BackendError(f"malformed /tokenize response: {str(body)[:_BODY_EXCERPT]}", url=server.process.url)
        return len(tokens)

    # -- internals -------------------------------------------------------------------------------------------------

    def payload(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        """The ``/v1/chat/completions`` body for one conversation."""
        payload: dict[str, Any] = {
            "messages": conversation,
            "temperature": 0,
            "max_tokens": config.max_new_tokens,
            # Named on every request: its global scale stays 1.0 whatever --lora-init-without-apply says.
            "lora": [{"id": 0, "scale": 1.0}] if self.adapter is not None else [],
        }
        if config.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": config.json_schema, "strict": True},
            }
        return payload

    def _complete(self, server: _Server, conversation: list[Message], config: GenerationConfig) -> Completion:
        start = time.perf_counter()
        body = self._post(server, "/v1/chat/completions", self.payload(conversation, config))
        latency_ms = (time.perf_counter() - start) * 1000
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            usage = body["usage"]
            prompt_tokens, completion_tokens = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            problem = f"malformed chat-completions response ({type(error).__name__}): {str(body)[:_BODY_EXCERPT]}"
            raise BackendError(problem, url=server.process.url) from error
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text, prompt_tokens, completion_tokens, latency_ms, finish)

    def _post(self, server: _Server, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{server.process.url}{route}"
        try:
            response = server.client.post(route, json=payload)
        except httpx.TimeoutException as error:
            raise BackendError(f"no answer within {self.timeout_s:g} s", url=url) from error
        except httpx.TransportError as error:
            dead = "" if server.process.alive() else f"; llama-server exited{server.log_tail()}"
            raise BackendError(f"unreachable ({type(error).__name__}: {error}){dead}", url=url) from error
        if response.status_code >= 400:
            raise BackendError(f"request refused: {_excerpt(response)}", url=url, status=response.status_code)
        try:
            body = response.json()
        except ValueError as error:
            raise BackendError(f"not JSON: {_excerpt(response)}", url=url, status=response.status_code) from error
        if not isinstance(body, dict):
            raise BackendError(f"not a JSON object: {_excerpt(response)}", url=url, status=response.status_code)
        return body


class _Server:
    """A running ``llama-server``, the HTTP client that talks to it, and its log file."""

    def __init__(self, process: ServerProcess, client: httpx.Client, log: Path) -> None:
        self.process = process
        self.client = client
        self.log = log
        self.finalizer: Any = None

    def log_tail(self, lines: int = 10) -> str:
        with contextlib.suppress(OSError):
            tail = self.log.read_text(errors="replace").splitlines()[-lines:]
            return ":\n" + "\n".join(tail) if tail else ""
        return ""


def _shutdown(process: ServerProcess, client: httpx.Client, log: Path) -> None:
    client.close()
    process.stop()
    log.unlink(missing_ok=True)


def _announce(line: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[dim]{line}[/dim]")


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return (text[:_BODY_EXCERPT] + "...") if len(text) > _BODY_EXCERPT else (text or "(empty body)")
