"""``serve``: build a server for a project and run it (blocking), or start one in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from tunewise import egress
from tunewise.config import Project, ServeSpec
from tunewise.errors import InputError
from tunewise.llamacpp.server import free_port
from tunewise.serve.app import create_app
from tunewise.serve.catalog import Catalog
from tunewise.serve.engines import Engine
from tunewise.serve.keys import ApiKeys, default_keys_path
from tunewise.serve.ratelimit import ConcurrencyGate, RateLimiter
from tunewise.serve.requestlog import RequestLog, default_log_path
from tunewise.serve.state import ServerState, is_loopback, serve_dir

logger = logging.getLogger(__name__)
DRAIN_TIMEOUT_S = 30


def build_state(
    project: Project,
    spec: ServeSpec | None = None,
    *,
    announce: Callable[[str], None] | None = None,
    check_examples: int = 0,
) -> ServerState:
    """Everything a server needs, checked before it binds: models found, keys present where required.

    Raises:
        InputError: a non-loopback address without API keys; an engine that cannot run here.
    """
    spec = spec or project.spec.serve
    keys = ApiKeys(default_keys_path(project.state_dir))
    needs_keys = spec.require_api_key or not is_loopback(spec.host)
    if needs_keys and not keys.list():
        raise InputError(
            f"serving on {spec.host} needs API keys (none in {keys.path}): create one with "
            "`tunewise serve keys create NAME`, or bind 127.0.0.1",
            field="serve.host" if not is_loopback(spec.host) else "serve.require_api_key",
        )
    log = None
    if spec.log.enabled:
        path = Path(spec.log.path) if spec.log.path else default_log_path(project.state_dir)
        if not path.is_absolute():
            path = project.root / path
        log = RequestLog(path, redact_pii=spec.log.redact_pii, retention_days=spec.log.retention_days)
    return ServerState(
        project=project,
        spec=spec,
        catalog=Catalog.load(project),
        engine=create_engine(project, spec, announce=announce),
        log=log,
        keys=keys if needs_keys else None,
        limiter=RateLimiter(spec.rate_limit_per_min),
        gate=ConcurrencyGate(spec.parallel, spec.max_queue),
        check_examples=check_examples,
    )


def create_engine(project: Project, spec: ServeSpec, *, announce: Callable[[str], None] | None = None) -> Engine:
    from tunewise.serve.engines.child import ChildEngine

    serve_dir(project).mkdir(parents=True, exist_ok=True)
    engine_log = serve_dir(project) / f"engine-{spec.engine}.log"
    if spec.engine == "llamacpp":
        from tunewise.serve.engines.llamacpp import LlamaCppDriver

        return ChildEngine(LlamaCppDriver(spec, announce=announce), log_file=engine_log)
    if spec.engine == "vllm":
        from tunewise.serve.engines.vllm import VllmDriver

        return ChildEngine(VllmDriver(spec), log_file=engine_log, start_timeout_s=900)
    from tunewise.serve.engines.transformers import TransformersEngine

    return TransformersEngine(spec)


class _DrainingServer(uvicorn.Server):
    """uvicorn, except that a drained shutdown on SIGTERM/SIGINT exits 0: uvicorn re-raises the signal once it has
    shut down, so a clean drain would look like a kill to a supervisor (systemd, Kubernetes, CI)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals can only be handled on the main thread (start_server runs on another one)
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _uvicorn(state: ServerState) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(state),
        host=state.spec.host,
        port=state.spec.port,
        log_config=None,
        access_log=False,  # tunewise logs each request itself, without prompt text
        timeout_graceful_shutdown=DRAIN_TIMEOUT_S,
        limit_concurrency=None,
        timeout_keep_alive=30,
    )
    return _DrainingServer(config)


@egress.guarded
def serve(
    project: Project,
    spec: ServeSpec | None = None,
    *,
    announce: Callable[[str], None] | None = None,
    check_examples: int = 0,
) -> None:
    """Serve the project's base model and adapters until SIGINT/SIGTERM (then drain: in-flight requests finish).

    Args:
        check_examples: > 0: an adapter is served only after its task metric on this many dev examples through the
            server is within 1 point of the in-process evaluation (checked at start and whenever one appears).
    """
    spec = _with_port(spec or project.spec.serve)
    state = build_state(project, spec, announce=announce, check_examples=check_examples)
    state.base_url = f"http://{_local_address(spec.host)}:{spec.port}/v1"
    if announce is not None:
        announce(f"serving {project.spec.name} with {spec.engine} on {state.base_url}")
    _uvicorn(state).run()


def _with_port(spec: ServeSpec) -> ServeSpec:
    """``port: 0`` resolved to a free port now: the parity check and the announcement need the address."""
    if spec.port != 0:
        return spec
    return spec.model_copy(update={"port": free_port(_local_address(spec.host))})


def _local_address(host: str) -> str:
    """Where this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@dataclass
class RunningServer:
    """A server started by :func:`start_server`: its URL and how to stop it."""

    url: str
    state: ServerState
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def base_url(self) -> str:
        """What the ``openai`` client takes as ``base_url``."""
        return f"{self.url}/v1"

    def stop(self, timeout_s: float = 60.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(
    project: Project,
    spec: ServeSpec | None = None,
    *,
    timeout_s: float = 600.0,
    check_examples: int = 0,
    **overrides: Any,
) -> RunningServer:
    """Start a server on a background thread and return once it answers (``port: 0`` picks a free port).

    Args:
        overrides: fields of the ``serve`` section (``engine``, ``port``, ``parallel``…).

    Raises:
        TimeoutError: the server did not start within ``timeout_s`` (the engine failed: see its log).
    """
    spec = _with_port((spec or project.spec.serve).model_copy(update=overrides))
    state = build_state(project, spec, check_examples=check_examples)
    state.base_url = f"http://{_local_address(spec.host)}:{spec.port}/v1"
    server = _uvicorn(state)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as error:  # reported to the caller below
            errors.append(error)

    thread = threading.Thread(target=run, name="tunewise-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if errors or not thread.is_alive():
            raise errors[0] if errors else RuntimeError("the server stopped while starting")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server did not start within {timeout_s:g} s")
        time.sleep(0.05)
    return RunningServer(state.base_url.removesuffix("/v1"), state, server, thread)
