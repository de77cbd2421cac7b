"""An engine that is an OpenAI-compatible server in a child process (llama-server, vLLM), kept alive and swapped.

- A supervisor notices a dead process within ~0.2 s: requests get :class:`EngineUnavailable` (the front answers
  503 with ``Retry-After``) and the process is started again with the same plan.
- :meth:`ChildEngine.update` starts a second process with the new model set, moves new requests to it once it is
  healthy, and stops the old one when its in-flight requests are done (blue-green: no request is dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from tunewise.llamacpp.server import LaunchPlan, ServerProcess
from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines import EngineRejected, EngineUnavailable

logger = logging.getLogger(__name__)
_SUPERVISE_EVERY_S = 0.2
_DRAIN_TIMEOUT_S = 120.0


class Driver(Protocol):
    """What differs between child engines: how to plan a process for a model set and how to address a model."""

    name: str

    def plan(self, models: Sequence[ServedModel]) -> LaunchPlan:
        """The process to run for ``models`` (may convert files first: runs in a worker thread)."""
        ...

    def translate(self, body: dict[str, Any], model: ServedModel, plan: LaunchPlan) -> dict[str, Any]:
        """The request body this engine needs to answer as ``model``."""
        ...


@dataclass
class _Generation:
    process: ServerProcess
    plan: LaunchPlan
    in_flight: int = 0


class ChildEngine:
    """An :class:`~tunewise.serve.engines.Engine` backed by a supervised child server."""

    def __init__(self, driver: Driver, *, log_file: Path | None = None, start_timeout_s: float = 300.0) -> None:
        self.name = driver.name
        self.driver = driver
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self._current: _Generation | None = None
        self._client: httpx.AsyncClient | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._swap = asyncio.Lock()
        self._stopping = False
        self._retiring: dict[asyncio.Task[None], _Generation] = {}

    @property
    def pid(self) -> int | None:
        return self._current.process.pid if self._current is not None else None

    async def start(self, models: Sequence[ServedModel]) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=5.0), limits=limits)
        plan = await asyncio.to_thread(self.driver.plan, models)
        self._current = await self._launch(plan)
        self._supervisor = asyncio.create_task(self._supervise())

    async def update(self, models: Sequence[ServedModel]) -> None:
        async with self._swap:
            plan = await asyncio.to_thread(self.driver.plan, models)
            old = self._current
            if old is not None and plan == old.plan:
                return
            self._current = await self._launch(plan)
            logger.info("engine %s: now serving %d models (pid %s)", self.name, len(models), self.pid)
            if old is not None:
                task = asyncio.create_task(self._retire(old))
                self._retiring[task] = old
                task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for task, generation in list(self._retiring.items()):
            task.cancel()
            await asyncio.to_thread(generation.process.stop)
        if self._current is not None:
            await asyncio.to_thread(self._current.process.stop)
        if self._client is not None:
            await self._client.aclose()

    def ready(self) -> bool:
        return self._current is not None and self._current.process.alive()

    async def chat(self, body: dict[str, Any], model: ServedModel) -> dict[str, Any]:
        generation = self._generation()
        generation.in_flight += 1
        try:
            payload = self.driver.translate(body, model, generation.plan)
            try:
                response = await self._client.post(f"{generation.process.url}/v1/chat/completions", json=payload)
            except httpx.TransportError as error:
                raise EngineUnavailable(f"engine {self.name} did not answer ({type(error).__name__})") from error
            self._check(response, generation)
            return response.json()
        finally:
            generation.in_flight -= 1

    async def chat_stream(self, body: dict[str, Any], model: ServedModel) -> AsyncIterator[dict[str, Any]]:
        generation = self._generation()
        generation.in_flight += 1
        try:
            payload = self.driver.translate(body, model, generation.plan)
            url = f"{generation.process.url}/v1/chat/completions"
            try:
                async with self._client.stream("POST", url, json=payload) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        self._check(response, generation)
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        data = line.removeprefix("data:").strip()
                        if data == "[DONE]":
                            return
                        yield json.loads(data)
            except httpx.TransportError as error:
                raise EngineUnavailable(f"engine {self.name} stopped answering ({type(error).__name__})") from error
        finally:
            generation.in_flight -= 1

    # -- internals ---------------------------------------------------------------------------------------------

    def _generation(self) -> _Generation:
        generation = self._current
        if generation is None or self._client is None or not generation.process.alive():
            raise EngineUnavailable(f"engine {self.name} is restarting")
        return generation

    def _check(self, response: httpx.Response, generation: _Generation) -> None:
        if response.status_code < 400:
            return
        message = _error_message(response)
        if response.status_code >= 500 and not generation.process.alive():
            raise EngineUnavailable(f"engine {self.name} failed: {message}")
        if response.status_code == 503:
            raise EngineUnavailable(f"engine {self.name} is busy: {message}")
        # llama-server reports some invalid requests (a prompt over the context) as 500: the request is at fault.
        raise EngineRejected(message, 400 if response.status_code >= 500 else response.status_code)

    async def _launch(self, plan: LaunchPlan) -> _Generation:
        # Started from the event loop's worker threads, which live as long as the server: a `tunewise serve` killed
        # with SIGKILL takes its engine with it instead of leaving it running.
        process = ServerProcess(plan, log_file=self.log_file, die_with_parent=True)
        await asyncio.to_thread(process.start, self.start_timeout_s)
        return _Generation(process, plan)

    async def _supervise(self) -> None:
        while not self._stopping:
            await asyncio.sleep(_SUPERVISE_EVERY_S)
            generation = self._current
            if generation is None or generation.process.alive() or self._swap.locked():
                continue
            logger.error("engine %s (pid %s) died; restarting it", self.name, generation.process.pid)
            async with self._swap:
                if self._current is generation:
                    try:
                        self._current = await self._launch(generation.plan)
                        self.restarts += 1
                    except Exception:
                        logger.exception("engine %s could not be restarted; trying again", self.name)
                        await asyncio.sleep(1.0)

    async def _retire(self, generation: _Generation) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _DRAIN_TIMEOUT_S
        while generation.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(generation.process.stop)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message") if isinstance(error, dict) else None
        return str(message or error)[:500]
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
