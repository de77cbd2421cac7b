"""GGUF helpers of the export stage: the requested types, a file's header, reloading a GGUF into transformers.

The conversion itself is llama.cpp's (:mod:`tunewise.llamacpp.convert`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, TunewiseError
from tunewise.llamacpp.convert import GGUF_TYPES


class ExportError(TunewiseError):
    """An export step failed (an artifact could not be written or checked)."""


def gguf_types(requested: Iterable[str]) -> list[str]:
    """The requested GGUF types, each once, in order.

    Raises:
        InputError: an unknown type (an empty one too: never silently dropped).
    """
    types = list(dict.fromkeys(requested))
    for outtype in types:
        if outtype not in GGUF_TYPES:
            raise InputError(f"unknown GGUF type {outtype!r} (supported: {', '.join(GGUF_TYPES)})", field="--gguf")
    return types


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    """A few fields of a GGUF header (architecture, file type, tensor count, chat template) read with ``gguf``."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    wanted = {"general.architecture", "general.file_type", "tokenizer.chat_template", "tokenizer.ggml.model"}
    out: dict[str, Any] = {"tensors": len(reader.tensors)}
    for name in wanted:
        field = reader.fields.get(name)
        if field is not None:
            out[name] = field.contents()
    return out


def load_gguf_model(path: str | Path) -> tuple[Any, Any]:
    """Load a GGUF back into transformers (dequantized to fp32 on CPU): ``(model, tokenizer)``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model.eval()
    return model, tokenizer
