"""Files llama.cpp needs, converted once and cached by content: a base model as GGUF, an adapter as GGUF LoRA."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path

from tunewise.io.cache import cache_root
from tunewise.llamacpp.convert import convert_lora_to_gguf, convert_to_gguf
from tunewise.models.embedded import EMBEDDED_MODELS, embedded_gguf_path, resolve_model_path
from tunewise.models.local import directory_sha256


def base_gguf(base: str, version: str | None = None) -> Path:
    """The GGUF llama.cpp runs for ``base``: an embedded model's own GGUF (for SmolLM2 the Q4_1 file whose
    dequantized weights transformers trains and evaluates), else an f16 conversion of the HF directory.

    Args:
        version: the SHA-256 of the base's files (computed when not given); names the cached conversion.
    """
    if base in EMBEDDED_MODELS:
        return embedded_gguf_path(base)
    directory = resolve_model_path(base)
    target = cache_root() / "gguf" / f"{version or directory_sha256(directory)}-f16.gguf"
    return _once(target, lambda out: convert_to_gguf(directory, out, "f16"))


def lora_gguf(adapter_dir: Path, base: str, version: str | None = None) -> Path:
    """The GGUF LoRA of a PEFT adapter, cached under the adapter's content hash ``version`` (computed when not
    given): a copy of the same adapter elsewhere (an MLflow alias) converts nothing new."""
    target = cache_root() / "gguf-lora" / f"{version or directory_sha256(adapter_dir)}.gguf"
    return _once(target, lambda out: convert_lora_to_gguf(adapter_dir, resolve_model_path(base), out))


def _once(target: Path, convert: Callable[[Path], object]) -> Path:
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two servers starting together convert once
        if not target.is_file():
            convert(target)
    return target
