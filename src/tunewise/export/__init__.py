"""Export: merge a LoRA adapter into its base (safetensors), convert to GGUF, and check parity with the adapter."""

from tunewise.export.gguf import ExportError, gguf_types, load_gguf_model
from tunewise.export.merge import merge_and_save, resolve_base_model
from tunewise.export.parity import (
    DEFAULT_TOLERANCES,
    ArtifactParity,
    GgufChecks,
    LogitParity,
    ParityReport,
    TaskParity,
    Tolerance,
)
from tunewise.export.pipeline import ExportResult, export_adapter

__all__ = [
    "DEFAULT_TOLERANCES",
    "ArtifactParity",
    "ExportError",
    "ExportResult",
    "GgufChecks",
    "LogitParity",
    "ParityReport",
    "TaskParity",
    "Tolerance",
    "export_adapter",
    "gguf_types",
    "load_gguf_model",
    "merge_and_save",
    "resolve_base_model",
]
