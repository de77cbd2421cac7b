"""Load a causal LM and its tokenizer for generation or training, with device and dtype chosen automatically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewise.models.embedded import resolve_model_path


def pick_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def pick_dtype(device: str) -> Any:
    import torch

    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(str(path)))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    path: str | Path, *, adapter: str | Path | None = None, device: str | None = None, dtype: Any = None
) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)``; ``adapter`` is a PEFT adapter directory applied on top."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    directory = resolve_model_path(str(path))
    tokenizer = load_tokenizer(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device)
    model.eval()
    return model, tokenizer
