"""Saving a transformers model as a plain safetensors checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_plain_checkpoint(model: Any, tokenizer: Any, directory: str | Path) -> None:
    """Save a model as safetensors plus its tokenizer, even when it was loaded from a GGUF file.

    transformers marks a GGUF-loaded (dequantized, plain float) model as quantized and refuses to save it;
    the marker is cleared first. Models that never came from a GGUF file are saved unchanged.
    """
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
