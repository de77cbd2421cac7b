"""The HTTP front: OpenAI's routes, operations routes, OpenAI-shaped errors, request ids, hot reload, drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunewise.serve.chat import chat_completions
from tunewise.serve.parity import check_parity, failed_check
from tunewise.serve.protocol import ApiError
from tunewise.serve.state import ServerState

logger = logging.getLogger(__name__)


def create_app(state: ServerState) -> Starlette:
    """The ASGI app of one server; its lifespan starts the engine and the reload loop and stops them."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.engine.start(list(state.catalog.models.values()))
        tasks = [asyncio.create_task(_reload_loop(state))]
        if state.check_examples > 0:
            tasks.append(asyncio.create_task(_check_loop(state)))
        try:
            yield
        finally:
            state.draining = True
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.engine.stop()
            if state.log is not None:
                state.log.close()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", get_model, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.server = state
    return app


async def list_models(request: Request) -> Response:
    """Every model that answers now (adapters being checked or refused by ``--check`` are left out)."""
    state: ServerState = request.app.state.server
    served = [m.openai() for m in state.catalog.models.values() if not state.pending(m) and not state.refused(m)]
    return JSONResponse({"object": "list", "data": served})


async def get_model(request: Request) -> Response:
    state: ServerState = request.app.state.server
    model = state.catalog.get(request.path_params["name"])
    if model is None or state.pending(model) or state.refused(model):
        raise ApiError(404, f"the model {request.path_params['name']!r} does not exist", code="model_not_found")
    return JSONResponse(model.openai())


async def health(request: Request) -> Response:
    """Liveness: the front answers (the engine may be restarting)."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: the engine can answer and the server is not draining."""
    state: ServerState = request.app.state.server
    if state.draining or not state.engine.ready():
        return JSONResponse({"status": "unavailable", "draining": state.draining}, status_code=503)
    return JSONResponse({"status": "ready", "engine": state.engine.name, "models": len(state.catalog.models)})


async def metrics(request: Request) -> Response:
    state: ServerState = request.app.state.server
    state.metrics.in_flight.set(state.gate.in_flight)
    state.metrics.queued.set(state.gate.queued)
    state.metrics.engine_restarts.set(getattr(state.engine, "restarts", 0))
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


class RequestIdMiddleware:
    """A fresh id per request in ``request.state.request_id`` and the ``X-Request-Id`` response header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code)
    body = ApiError(error.status_code, f"{request.method} {request.url.path}: {error.detail}", code=code).body()
    return JSONResponse(body, status_code=error.status_code)


async def _unexpected(request: Request, error: Exception) -> Response:
    request_id = getattr(request.state, "request_id", "-")
    logger.error("request %s failed", request_id, exc_info=error)  # the traceback stays in the server's log
    body = ApiError(500, f"internal error (request {request_id})", kind="server_error").body()
    return JSONResponse(body, status_code=500)


async def _reload_loop(state: ServerState) -> None:
    """Pick up new adapters and moved aliases: rescan, load them into the engine, then route to them."""
    while True:
        await asyncio.sleep(state.spec.reload_interval_s)
        try:
            found = await asyncio.to_thread(state.catalog.rescan)
            if found is not None:
                await state.engine.update(found)
                state.catalog.replace(found)
                logger.info("serving %s", ", ".join(m.name for m in found))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("reloading the models failed; serving the previous set")


async def _check_loop(state: ServerState) -> None:
    """``--check``: run the parity check of every adapter not yet checked, through this server, one at a time."""
    while True:
        waiting = [m for m in state.catalog.models.values() if state.pending(m)]
        for model in waiting:
            try:
                verdict = await asyncio.to_thread(
                    check_parity,
                    state.project,
                    state.base_url,
                    model,
                    limit=state.check_examples,
                    api_key=state.check_token,
                    concurrency=state.spec.parallel,
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.exception("parity check of %s could not run; it stays unserved", model.name)
                verdict = failed_check(model, f"the check could not run: {error}")
            state.verdicts[model.version] = verdict
            (logger.info if verdict.passed else logger.error)("parity check: %s", verdict.describe())
        await asyncio.sleep(state.spec.reload_interval_s)
