"""``POST /v1/chat/completions``: check, route to the engine, answer (or stream), log exactly once."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines import EngineRejected, EngineUnavailable
from tunewise.serve.protocol import ApiError, ChatRequest, output_validity, parse_chat_request
from tunewise.serve.ratelimit import Overloaded
from tunewise.serve.requestlog import LoggedRequest
from tunewise.serve.state import ServerState

access_log = logging.getLogger("tunewise.serve.access")


@dataclass
class _Exchange:
    """One request as it goes: what is logged at the end."""

    request_id: str
    started: float
    arrived: float = field(default_factory=time.time)
    key_id: str | None = None
    chat: ChatRequest | None = None
    model: ServedModel | None = None
    schema: dict[str, Any] | None = None
    output: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    status: int = 200
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def chat_completions(request: Request) -> Response:
    state: ServerState = request.app.state.server
    exchange = _Exchange(request_id=request.state.request_id, started=time.perf_counter())
    try:
        checking = _bearer(request) == state.check_token
        exchange.key_id = "parity-check" if checking else authenticate(state, request)
        raw = await read_body(request, state.spec.max_body_bytes)
        exchange.chat = chat = parse_chat_request(raw)
        exchange.model = model = find_model(state, chat.model, checking=checking)
        body, exchange.schema = engine_body(state, chat, model)
        slot = state.gate.slot()
        try:
            await slot.__aenter__()  # held until the answer (or the stream) ends
        except Overloaded as busy:
            state.metrics.rejected.labels("overloaded").inc()
            raise ApiError(
                429,
                "the server is at capacity; retry after the indicated delay",
                code="overloaded",
                kind="rate_limit_error",
                headers={"Retry-After": str(max(1, math.ceil(busy.retry_after_s)))},
            ) from None
        if chat.stream:
            return StreamingResponse(
                _stream(state, exchange, body, slot),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        try:
            answer = await state.engine.chat(body, model)
        finally:
            await slot.__aexit__(None, None, None)
        completion = _completion(exchange, answer)
        await _finish(state, exchange)  # logged before the client has the answer
        return JSONResponse(completion)
    except ApiError as error:
        exchange.status, exchange.error = error.status, error.message
        await _finish(state, exchange)
        raise
    except EngineUnavailable as error:
        exchange.status, exchange.error = 503, str(error)
        await _finish(state, exchange)
        raise ApiError(
            503,
            str(error),
            code="engine_unavailable",
            kind="server_error",
            headers={"Retry-After": str(max(1, math.ceil(error.retry_after_s)))},
        ) from None
    except EngineRejected as error:
        exchange.status, exchange.error = error.status, str(error)
        await _finish(state, exchange)
        raise ApiError(error.status, str(error), code="rejected_by_engine") from None
    except asyncio.CancelledError:  # the client went away, or the drain on shutdown ran out of time
        exchange.status, exchange.error = 499, "cancelled before the answer was complete"
        await _finish(state, exchange)
        raise
    except Exception as error:
        exchange.status, exchange.error = 500, f"internal error: {type(error).__name__}"
        await _finish(state, exchange)
        raise


def authenticate(state: ServerState, request: Request) -> str | None:
    """The caller's key id, or ``None`` when no key is required. Raises 401 / 429 (per-key rate limit)."""
    key_id, per_minute = None, None
    if state.keys is not None:
        secret = _bearer(request)
        key = state.keys.verify(secret) if secret else None
        if key is None:
            state.metrics.rejected.labels("unauthenticated").inc()
            raise ApiError(
                401,
                "a valid API key is required (Authorization: Bearer …)",
                code="invalid_api_key",
                kind="authentication_error",
            )
        key_id, per_minute = key.key_id, key.rate_limit_per_min
    wait = state.limiter.try_acquire(key_id or "anonymous", per_minute=per_minute)
    if wait is not None:
        state.metrics.rejected.labels("rate_limited").inc()
        raise ApiError(
            429,
            "rate limit exceeded for this key",
            code="rate_limit_exceeded",
            kind="rate_limit_error",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return key_id


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is over the server's limit of {limit} bytes", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over the server's limit of {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def find_model(state: ServerState, name: str, *, checking: bool = False) -> ServedModel:
    """The served model ``name``; 404 when unknown or refused by its parity check, 503 while it is being checked."""
    model = state.catalog.get(name)
    if model is None:
        known = ", ".join(sorted(m.name for m in state.catalog.models.values() if state.refused(m) is None))
        raise ApiError(
            404, f"the model {name!r} does not exist (served: {known})", param="model", code="model_not_found"
        )
    refused = state.refused(model)
    if refused is not None:
        raise ApiError(404, f"{name!r} is not served: {refused.describe()}", param="model", code="failed_parity_check")
    if state.pending(model) and not checking:
        raise ApiError(
            503,
            f"{name!r} is being checked (tunewise serve --check) and is served once it passes",
            code="parity_check_pending",
            kind="server_error",
            headers={"Retry-After": "30"},
        )
    return model


def engine_body(
    state: ServerState, chat: ChatRequest, model: ServedModel
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The request as the engine gets it, and the schema its output must follow (the model's own by default)."""
    limit = chat.completion_limit or state.spec.default_max_tokens
    if limit >= state.spec.context_length:
        raise ApiError(
            400,
            f"max_tokens ({limit}) must be below the context length ({state.spec.context_length})",
            param="max_tokens",
            code="context_length_exceeded",
        )
    schema = chat.schema() if chat.response_format is not None else model.json_schema
    body: dict[str, Any] = {
        "messages": [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in chat.messages
        ],
        "max_tokens": limit,
        "temperature": chat.temperature,
        "top_p": chat.top_p,
        "stream": chat.stream,
    }
    if chat.seed is not None:
        body["seed"] = chat.seed
    if chat.stop is not None:
        body["stop"] = chat.stop
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    return body, schema


def _completion(exchange: _Exchange, answer: dict[str, Any]) -> dict[str, Any]:
    try:
        choice = answer["choices"][0]
        exchange.output = choice["message"].get("content") or ""
        exchange.finish_reason = choice.get("finish_reason") or "stop"
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise EngineUnavailable(f"the engine returned a malformed answer ({type(error).__name__})") from error
    usage = answer.get("usage") or {}
    exchange.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    exchange.completion_tokens = int(usage.get("completion_tokens") or 0)
    assert exchange.model is not None
    return {
        "id": f"chatcmpl-{exchange.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": exchange.model.name,
        "system_fingerprint": exchange.model.version[:16],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": exchange.output},
                "logprobs": None,
                "finish_reason": exchange.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": exchange.prompt_tokens,
            "completion_tokens": exchange.completion_tokens,
            "total_tokens": exchange.prompt_tokens + exchange.completion_tokens,
        },
    }


async def _stream(
    state: ServerState, exchange: _Exchange, body: dict[str, Any], slot: AbstractAsyncContextManager[None]
) -> AsyncIterator[bytes]:
    assert exchange.model is not None and exchange.chat is not None
    model, created = exchange.model, int(time.time())
    base = {
        "id": f"chatcmpl-{exchange.request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model.name,
        "system_fingerprint": model.version[:16],
    }
    pieces: list[str] = []
    try:
        yield _sse(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        )
        async for chunk in state.engine.chat_stream(body, model):
            usage = chunk.get("usage")
            if usage:
                exchange.prompt_tokens = int(usage.get("prompt_tokens") or 0)
                exchange.completion_tokens = int(usage.get("completion_tokens") or 0)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content") or ""
                if text and exchange.ttft_ms is None:
                    exchange.ttft_ms = (time.perf_counter() - exchange.started) * 1000
                    state.metrics.ttft.labels(model.name).observe(exchange.ttft_ms / 1000)
                pieces.append(text)
                if choice.get("finish_reason"):
                    exchange.finish_reason = choice["finish_reason"]
                if text or choice.get("finish_reason"):
                    out = {
                        "index": 0,
                        "delta": {"content": text} if text else {},
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason"),
                    }
                    yield _sse({**base, "choices": [out]})
        if exchange.chat.include_usage:
            usage = {
                "prompt_tokens": exchange.prompt_tokens,
                "completion_tokens": exchange.completion_tokens,
                "total_tokens": exchange.prompt_tokens + exchange.completion_tokens,
            }
            yield _sse({**base, "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"
    except (EngineUnavailable, EngineRejected) as error:
        exchange.status = 503 if isinstance(error, EngineUnavailable) else getattr(error, "status", 400)
        exchange.error = str(error)
        failure = ApiError(exchange.status, str(error), code="engine_unavailable", kind="server_error")
        yield _sse(failure.body())
    except BaseException:  # the client went away (cancellation) or something unexpected: still logged once
        exchange.status, exchange.error = 499, "the client closed the stream"
        raise
    finally:
        await slot.__aexit__(None, None, None)
        exchange.output = "".join(pieces)
        await _finish(state, exchange)


def _sse(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def _finish(state: ServerState, exchange: _Exchange) -> None:
    """Metrics, the access log line (no prompt text) and the request log row — once per request."""
    if exchange.extra.get("finished"):
        return
    exchange.extra["finished"] = True
    latency_ms = (time.perf_counter() - exchange.started) * 1000
    model_name = exchange.model.name if exchange.model else (exchange.chat.model if exchange.chat else "")
    json_valid, schema_valid = (
        output_validity(exchange.output, exchange.schema) if exchange.status == 200 else (None, None)
    )
    state.metrics.observe(
        model_name or "-", exchange.status, latency_ms / 1000, exchange.prompt_tokens, exchange.completion_tokens
    )
    access_log.info(
        "request",
        extra={
            "fields": {
                "request_id": exchange.request_id,
                "status": exchange.status,
                "model": model_name,
                "key_id": exchange.key_id,
                "latency_ms": round(latency_ms, 1),
                "ttft_ms": exchange.ttft_ms,
                "prompt_tokens": exchange.prompt_tokens,
                "completion_tokens": exchange.completion_tokens,
                "finish_reason": exchange.finish_reason or None,
                "json_valid": json_valid,
                "schema_valid": schema_valid,
                "error": exchange.error,
            }
        },
    )
    if state.log is None or exchange.chat is None:
        return  # a request that could not be parsed has nothing to learn from
    entry = LoggedRequest(
        request_id=exchange.request_id,
        created=exchange.arrived,
        key_id=exchange.key_id,
        model=exchange.chat.model,
        model_version=exchange.model.version if exchange.model else "",
        messages=[{"role": m.role, "content": m.text()} for m in exchange.chat.messages],
        output=exchange.output,
        json_valid=json_valid,
        schema_valid=schema_valid,
        prompt_tokens=exchange.prompt_tokens,
        completion_tokens=exchange.completion_tokens,
        latency_ms=latency_ms,
        ttft_ms=exchange.ttft_ms,
        finish_reason=exchange.finish_reason,
        status=exchange.status,
        stream=exchange.chat.stream,
        error=exchange.error,
    )
    # SQLite and PII redaction off the event loop; shielded, so a cancelled stream still logs its request once
    await asyncio.shield(asyncio.to_thread(state.log.write, entry))


def new_request_id() -> str:
    return uuid.uuid4().hex
