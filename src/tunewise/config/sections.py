"""The sections of ``tunewise.yaml`` that describe the task, its data, its targets and its candidates."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tunewise.config.base import Strict
from tunewise.config.tasks import EMBEDDED_MODEL, TaskKind

# A candidate's name names its files and MLflow keys: no path separators, no leading '.' or '-'.
CANDIDATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class TaskSpec(Strict):
    """What the model must do."""

    kind: TaskKind
    instructions: str = ""
    """System prompt: the task's instructions. Used identically for evaluation and training."""
    input_template: str | None = None
    """How a ``fields`` row becomes the user message, e.g. ``"Receipt:\\n{text}"``; default: the input field."""
    output_schema: dict[str, Any] | None = None
    """For ``extract``: the JSON Schema of the output object (inline)."""
    output_schema_file: str | None = None
    """For ``extract``: a path (relative to the spec) holding the JSON Schema."""
    labels: list[str] | None = None
    """For ``classify``: the label set."""
    persona_file: str | None = None
    """For ``chat``: a text file, one persona line (a brand-voice rule) per line, added to the system prompt of every
    row that does not carry its own ``persona``."""
    labels_file: str | None = None
    """For ``classify``: a JSON file holding the label list."""
    field_normalizers: dict[str, str] = Field(default_factory=dict)
    """For ``extract``: field -> normaliser (``text``, ``exact``, ``number``, ``money``, ``date``, ``fuzzy``)."""
    fuzzy_threshold: float = Field(0.8, gt=0, le=1)
    """Token-F1 at or above which a ``fuzzy`` field counts as correct."""


class DataSpec(Strict):
    """Where the examples are and how rows map to input and target."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None
    format: Literal["auto", "chat", "dialogue", "prompt_completion", "fields"] = "auto"
    input_field: str = "text"
    target_field: str = "target"
    id_field: str = "id"
    group_field: str | None = None
    """Rows sharing this key (e.g. a shop) must stay in one split."""
    documents: str | None = None
    """A JSONL of documents (``id``, ``text``, optional ``title``) for retrieval candidates."""


class TargetsSpec(Strict):
    """What counts as good enough."""

    metric: str | None = None
    """The quality metric that decides (default per task kind: field_accuracy / accuracy / rouge_l)."""
    threshold: float = Field(0.9, ge=0, le=1)
    p95_latency_ms: float | None = Field(None, gt=0)
    cost_per_1m_tokens: float | None = Field(None, gt=0)
    """Budget in US dollars per million tokens (prompt + completion)."""
    self_hosted_only: bool = False
    """Data residency: no data may leave the user's machines."""

    @field_validator("threshold")
    @classmethod
    def _meaningful_threshold(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a threshold of 0 is met by any model: set the quality the task needs")
        return value

    @field_validator("p95_latency_ms")
    @classmethod
    def _milliseconds(cls, value: float | None) -> float | None:
        if value is not None and value < 10:
            raise ValueError(
                f"{value} ms is below any real model's latency: the key is in milliseconds (seconds given?)"
            )
        return value

    @field_validator("cost_per_1m_tokens")
    @classmethod
    def _per_million(cls, value: float | None) -> float | None:
        if value is not None and value < 1e-3:
            raise ValueError(f"${value} per million tokens looks like a per-token price: the key is $ per 1M tokens")
        return value


class ModelSpec(Strict):
    """A model a candidate can use."""

    backend: Literal["local", "openai", "mock"] = "local"
    path: str | None = None
    """local: an HF model directory, or the name of an embedded model (``smollm2-135m``)."""
    adapter: str | None = None
    """local: a PEFT adapter directory applied on top of ``path``."""
    engine: Literal["transformers", "llamacpp"] = "transformers"
    """local: what runs the model. ``llamacpp``: a ``llama-server`` child process on the model's GGUF (the adapter
    as a GGUF LoRA), ``concurrency`` requests decoded together: several times faster on CPU. Its outputs can differ
    slightly from transformers' (quantized kernels), so predictions are cached per engine."""
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """openai: the environment variable holding the API key (never the key itself)."""
    price_in_per_1m: float | None = Field(None, ge=0)
    price_out_per_1m: float | None = Field(None, ge=0)
    gpu_hour_usd: float | None = Field(None, ge=0)
    """self-hosted: cost of the machine per hour, turned into $/1M tokens with the measured throughput."""
    outputs: list[str] | None = None
    """mock: scripted outputs, used in order and cycled."""
    concurrency: int = Field(4, ge=1)
    """openai: requests in flight at once. local with ``engine: llamacpp``: the server's parallel slots (requests
    decoded together; on a few CPU cores 4-8 is the sweet spot)."""
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(4, ge=0)
    on_premises: bool = False
    """openai: the endpoint runs on the user's own machines (e.g. a vLLM server), so data sent to it stays there."""

    @model_validator(mode="after")
    def _check_backend_fields(self) -> ModelSpec:
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("an openai model needs base_url and model")
        if self.backend == "mock" and self.outputs is None:
            raise ValueError("a mock model needs outputs")
        if self.backend != "local" and self.engine != "transformers":  # the default survives a dump and reload
            raise ValueError(
                f"engine: {self.engine} applies to local models only (this one has backend: {self.backend}): "
                f"a {self.backend} model runs wherever its endpoint runs it"
            )
        return self

    @property
    def self_hosted(self) -> bool:
        return self.backend != "openai" or self.on_premises


class CandidateSpec(Strict):
    """A model plus a prompt strategy."""

    name: str
    """An identifier: letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit (it names files)."""
    model: str = EMBEDDED_MODEL
    prompt: str = "zero_shot"
    """A registered prompt strategy: ``zero_shot``, ``k_shot``, ``rag`` (zero-shot with retrieved passages),
    ``k_shot_rag`` (k-shot with retrieved passages)."""
    k: int = Field(3, ge=0)
    """k_shot, k_shot_rag: how many solved examples from train precede the input."""
    shot_selection: Literal["random", "similar"] = "random"
    constrained: bool = False
    """Enforce the output JSON Schema with a grammar during decoding (local backend)."""
    retriever: Literal["bm25", "dense", "hybrid"] = "hybrid"
    """rag, k_shot_rag: how passages are retrieved from ``data.documents``."""
    retrieval_k: int = Field(3, ge=1)
    """rag, k_shot_rag: how many passages go into the prompt."""

    @field_validator("name")
    @classmethod
    def _identifier(cls, name: str) -> str:
        if not CANDIDATE_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not an identifier: use letters, digits, '.', '_' and '-', starting with a letter or"
                " digit (no '/', no spaces), at most 100 characters"
            )
        return name


class EvalSpec(Strict):
    """How evaluation runs."""

    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(8, ge=1)
    bootstrap_samples: int = Field(1000, ge=100)
    seed: int = 0
    gpu_hour_usd: float = Field(1.0, ge=0)
    """Default $/GPU-hour used to cost self-hosted candidates from measured throughput."""


class TrackingSpec(Strict):
    uri: str | None = None
    """Any MLflow tracking URI; default: a SQLite file inside the project's ``.tunewise`` directory."""
    experiment: str | None = None
