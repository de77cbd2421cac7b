"""Merge a PEFT LoRA adapter into its base model and save a plain safetensors model directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.models.checkpoint import save_plain_checkpoint
from tunewise.models.loading import load_model


def resolve_base_model(adapter_dir: str | Path, base_model: str | None = None) -> str:
    """The base model an adapter was trained on: ``base_model`` if given, else tunewise's ``metadata.json``,
    else PEFT's ``adapter_config.json`` (``base_model_name_or_path``).

    Raises:
        InputError: not an adapter directory, or no base model recorded and none given.
    """
    adapter_dir = Path(adapter_dir)
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise InputError("not a PEFT adapter directory (no adapter_config.json)", file=adapter_dir)
    if base_model:
        return base_model
    metadata = adapter_dir / "metadata.json"
    if metadata.is_file():
        recorded = json.loads(metadata.read_text(encoding="utf-8")).get("base_model")
        if recorded:
            return str(recorded)
    recorded = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not recorded:
        raise InputError("the adapter records no base model: pass --base", file=config, field="base_model_name_or_path")
    return str(recorded)


def load_adapter_model(base_model: str, adapter_dir: str | Path) -> tuple[Any, Any]:
    """Base + adapter on CPU in fp32 (the reference every exported artifact is compared with)."""
    import torch

    return load_model(base_model, adapter=adapter_dir, device="cpu", dtype=torch.float32)


def merge_and_save(peft_model: Any, tokenizer: Any, out_dir: str | Path) -> Any:
    """Fold the LoRA weights into the base (``merge_and_unload``) and save safetensors + tokenizer to ``out_dir``.

    Returns:
        The merged (plain transformers) model; ``peft_model`` must not be used afterwards.
    """
    out_dir = Path(out_dir)
    merged = peft_model.merge_and_unload()
    # A base loaded from a GGUF file blocks saving; the embedded model's safetensors cache does not, others might.
    save_plain_checkpoint(merged, tokenizer, out_dir)
    return merged
