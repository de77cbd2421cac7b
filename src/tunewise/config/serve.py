"""The ``serve:`` section: the engine, where the server listens, its limits, and its request log."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunewise.config.base import Strict

Engine = Literal["llamacpp", "vllm", "transformers"]


class RequestLogSpec(Strict):
    """Every request and response, in SQLite."""

    enabled: bool = True
    path: str | None = None
    """Default: ``.tunewise/serve/requests.db`` in the project."""
    redact_pii: bool = False
    """Replace e-mails, card numbers, phone numbers… (the data stage's PII registry) before anything is written."""
    retention_days: float | None = Field(90, gt=0)
    """Rows older than this are deleted; ``null`` keeps everything."""


class ServeSpec(Strict):
    """How ``tunewise serve`` runs."""

    engine: Engine = "llamacpp"
    """``llamacpp`` (CPU default: llama.cpp's own server), ``vllm`` (GPU), ``transformers`` (in-process fallback)."""
    host: str = "127.0.0.1"
    """A non-loopback address is refused unless API keys exist (``tunewise serve keys create``)."""
    port: int = Field(8000, ge=0, le=65535)
    parallel: int = Field(4, ge=1)
    """Requests decoded at once (llama.cpp slots / vLLM max sequences)."""
    max_queue: int = Field(64, ge=0)
    """Requests waiting for a slot; beyond it the server answers 429 with ``Retry-After``."""
    context_length: int = Field(4096, ge=64)
    """Tokens per request (prompt + completion)."""
    default_max_tokens: int = Field(512, ge=1)
    max_body_bytes: int = Field(1_000_000, ge=1024)
    rate_limit_per_min: int | None = Field(None, ge=1)
    """Requests per minute per API key (a key's own limit wins)."""
    require_api_key: bool = False
    """Also on loopback; always on for other addresses."""
    reload_interval_s: float = Field(2.0, gt=0)
    """How often new adapters and moved MLflow aliases are looked for."""
    threads: int | None = Field(None, ge=1)
    """Engine CPU threads (default: the cores this process may use)."""
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    """vllm: the share of GPU memory vLLM may take."""
    log: RequestLogSpec = RequestLogSpec()
