"""The ``openai`` backend: any OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, vLLM, tunewise serve).

Requests run on a thread pool of ``concurrency`` workers. Rate limits (429), server errors (5xx), timeouts,
connection errors and malformed (truncated, non-JSON) bodies are retried with exponential backoff and jitter
(honouring ``Retry-After``); any other 4xx fails at once. Decoding is greedy (``temperature: 0``); a
``json_schema`` becomes a strict ``response_format``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from tunewise.errors import BackendError, redact_secrets
from tunewise.models.base import GenerationConfig, ProgressCallback
from tunewise.records import Completion, Message

logger = logging.getLogger(__name__)

_RETRY_STATUSES = {429} | set(range(500, 600))
_MAX_BACKOFF_S = 60.0
_BODY_EXCERPT = 300


class OpenAIBackend:
    """A model behind an OpenAI-compatible HTTP API."""

    self_hosted = False

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        name: str | None = None,
        concurrency: int = 4,
        timeout_s: float = 60.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        """Describe the endpoint; no request is made until :meth:`generate`.

        Args:
            base_url: The API root, e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1``.
            model: The ``model`` field sent with each request.
            api_key_env: The environment variable holding the API key; ``None``: no ``Authorization`` header.
            name: The name shown in reports; defaults to ``model``.
            concurrency: Requests in flight at once.
            timeout_s: Per-request timeout.
            max_retries: Retries after the first attempt for retryable failures.
            backoff_s: First backoff delay; doubles each retry (with jitter), capped at 60 s.

        Raises:
            ValueError: ``base_url`` or ``model`` is empty, or ``concurrency`` < 1.
        """
        if not base_url or not model:
            raise ValueError("an openai backend needs base_url and model")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.name = name or model
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.estimated_usage = 0
        """How many completions had no ``usage`` in the response, so their token counts are estimates."""
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _secrets(self) -> list[str | None]:
        """The API key's value: redacted from every error, since an endpoint may echo the request back."""
        return [os.environ.get(self.api_key_env)] if self.api_key_env else []

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise BackendError(f"the API key variable {self.api_key_env} is not set (or empty)", url=self.url)
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _get_client(self) -> httpx.Client:
        with self._lock:  # :meth:`complete` may be called from many threads at once
            if self._client is None:
                limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
                self._client = httpx.Client(timeout=self.timeout_s, limits=limits)
            return self._client

    def close(self) -> None:
        """Close the HTTP connection pool (a later :meth:`generate` opens a new one)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def generate(
        self,
        conversations: list[list[Message]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        """Send one request per conversation, ``concurrency`` at a time; results in input order.

        Args:
            conversations: Chat conversations in OpenAI message form.
            config: ``max_new_tokens`` becomes ``max_tokens``; ``json_schema`` a strict ``response_format``.
                ``batch_size`` does not apply (concurrency is the backend's setting).
            progress: Called with 1 after each completed request.

        Returns:
            One :class:`Completion` per conversation; ``latency_ms`` is that request's wall time, retries included.

        Raises:
            BackendError: the endpoint is unreachable, answers with a non-retryable error, keeps failing after
                ``max_retries`` retries, or returns a malformed body; or the API key variable is unset.
        """
        if not conversations:
            return []
        headers = self._headers()
        client = self._get_client()
        results: list[Completion | None] = [None] * len(conversations)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="tunewise-openai")
        failed = True
        try:
            futures = {
                pool.submit(self._complete, client, headers, conversation, config): index
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

    def complete(
        self, conversation: list[Message], config: GenerationConfig, *, idempotency_key: str | None = None
    ) -> Completion:
        """One request, retried like :meth:`generate`'s; ``idempotency_key`` goes out as the ``Idempotency-Key``
        header on every attempt, so a gateway that honours it answers a re-sent request without charging twice.

        Raises:
            BackendError: as :meth:`generate`.
        """
        headers = self._headers()
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self._complete(self._get_client(), headers, conversation, config)

    def _payload(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": conversation,
            "temperature": 0,
            "max_tokens": config.max_new_tokens,
        }
        if config.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": config.json_schema, "strict": True},
            }
        return payload

    def _complete(
        self, client: httpx.Client, headers: dict[str, str], conversation: list[Message], config: GenerationConfig
    ) -> Completion:
        payload = self._payload(conversation, config)
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            attempts = f"{attempt + 1} attempt{'s' if attempt else ''}"
            last = attempt == self.max_retries
            try:
                response = client.post(self.url, json=payload, headers=headers)
            except httpx.TimeoutException as error:
                if last:
                    problem = f"timed out after {self.timeout_s:g} s ({attempts})"
                    raise BackendError(problem, url=self.url, secrets=self._secrets()) from error
                time.sleep(self._backoff(attempt, None))
                continue
            except httpx.TransportError as error:
                if last:
                    problem = f"unreachable ({type(error).__name__}: {error}; {attempts})"
                    raise BackendError(problem, url=self.url, secrets=self._secrets()) from error
                time.sleep(self._backoff(attempt, None))
                continue
            if response.status_code < 400:
                try:
                    return self._parse(response, conversation, (time.perf_counter() - start) * 1000)
                except BackendError:
                    if last:  # a truncated or garbled body is a transport fault: asked again like a 5xx
                        raise
                    time.sleep(self._backoff(attempt, None))
                    continue
            if response.status_code not in _RETRY_STATUSES or last:
                problem = f"request failed ({attempts}): {_excerpt(response)}"
                raise BackendError(problem, url=self.url, status=response.status_code, secrets=self._secrets())
            time.sleep(self._backoff(attempt, response.headers.get("Retry-After")))
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` if given, else 2^n backoff."""
        hinted = _parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, _MAX_BACKOFF_S)
        delay = min(self.backoff_s * 2**attempt, _MAX_BACKOFF_S)
        return delay * (0.5 + random.random() / 2)  # jitter: spread out clients that failed together

    def _parse(self, response: httpx.Response, conversation: list[Message], latency_ms: float) -> Completion:
        try:
            body = response.json()
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise BackendError(
                f"malformed chat-completions response ({type(error).__name__}): {_excerpt(response)}",
                url=self.url,
                status=response.status_code,
                secrets=self._secrets(),
            ) from error
        usage = body.get("usage") or {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        estimated = not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int)
        if estimated:
            with self._lock:
                if self.estimated_usage == 0:
                    where = redact_secrets(self.url, self._secrets())
                    logger.warning("%s: no usage in the response; estimating tokens as ~4 characters each", where)
                self.estimated_usage += 1
            prompt_tokens = sum(self.count_tokens(m.get("content", "")) for m in conversation)
            completion_tokens = self.count_tokens(text)
        return Completion(text, prompt_tokens, completion_tokens, latency_ms, finish, estimated)

    def identity(self) -> dict[str, Any]:
        """The endpoint and model name (a remote model's weights cannot be hashed)."""
        return {"backend": "openai", "base_url": self.base_url, "model": self.model}

    def count_tokens(self, text: str) -> int:
        """An estimate: ~4 characters per token (the remote tokenizer is unknown)."""
        return math.ceil(len(text) / 4)


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > _BODY_EXCERPT:
        text = text[:_BODY_EXCERPT] + "..."
    return text or "(empty body)"


def _parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
