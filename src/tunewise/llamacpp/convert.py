"""HF safetensors -> GGUF, and PEFT LoRA adapter -> GGUF LoRA, with llama.cpp's own converters.

The converters are not a PyPI module; they ship in the llama-cpp-python sdist (:mod:`tunewise.llamacpp.sdist`).
The first conversion extracts them (with their ``conversion`` package and the matching ``gguf-py``) into the cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tunewise.io.atomic import atomic_dir
from tunewise.io.cache import cache_root
from tunewise.llamacpp.sdist import LLAMA_CPP_PYTHON_VERSION, LlamaCppError, extract_vendored, sdist_tarball

GGUF_TYPES = ("f16", "q8_0", "bf16", "f32")
CONVERTER = "convert_hf_to_gguf.py"
LORA_CONVERTER = "convert_lora_to_gguf.py"
_KEEP = (CONVERTER, LORA_CONVERTER, "conversion/", "gguf-py/gguf/", "gguf-py/LICENSE", "LICENSE")


def cached_converter_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where :func:`converter_dir` keeps the converters of ``version`` once extracted (they may not be there yet)."""
    return cache_root() / "llama.cpp-convert" / version


def converter_dir(version: str = LLAMA_CPP_PYTHON_VERSION, *, script: str = CONVERTER) -> Path:
    """The directory holding llama.cpp's converter ``script`` (extracted into the cache on first use).

    Raises:
        LlamaCppError: the sdist can be neither found nor downloaded, or it lacks ``script``.
    """
    target = cached_converter_dir(version)
    if (target / script).is_file():
        return target
    tarball = sdist_tarball(version)
    with atomic_dir(target, replace=True) as tmp:  # an older cache may hold only the other converter
        extracted = extract_vendored(tarball, tmp, lambda path: path.startswith(_KEEP) or path in _KEEP)
        if CONVERTER not in extracted:
            raise LlamaCppError(f"{tarball}: no vendor/llama.cpp/{CONVERTER} inside")
    if not (target / script).is_file():
        raise LlamaCppError(f"{tarball}: no vendor/llama.cpp/{script} inside")
    return target


def _run_converter(script: str, args: list[str], out_file: Path, what: str) -> Path:
    path = converter_dir(script=script) / script
    out_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that matches the converter, not the installed gguf
    done = subprocess.run([sys.executable, str(path), *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not out_file.is_file():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        hint = ""
        if any("pre-tokenizer was not recognized" in line for line in lines):
            hint = (
                " (llama.cpp does not know this tokenizer's pre-tokenizer; "
                "GGUF export supports the tokenizers it lists)"
            )
        raise LlamaCppError(f"{script} failed for {what}{hint}:\n" + "\n".join(lines[-8:]))
    return out_file


def convert_to_gguf(model_dir: str | Path, out_file: str | Path, outtype: str) -> Path:
    """Convert a safetensors HF model directory to one GGUF file (``f16``, ``q8_0``, ``bf16`` or ``f32``).

    Raises:
        LlamaCppError: an unknown type, or the converter failed (its last output lines are in the message).
    """
    if outtype not in GGUF_TYPES:
        raise LlamaCppError(f"unknown GGUF type {outtype!r} (supported: {', '.join(GGUF_TYPES)})")
    out_file = Path(out_file)
    args = [str(model_dir), "--outfile", str(out_file), "--outtype", outtype]
    return _run_converter(CONVERTER, args, out_file, str(model_dir))


def convert_lora_to_gguf(adapter_dir: str | Path, base_dir: str | Path, out_file: str | Path) -> Path:
    """Convert a PEFT LoRA adapter directory to a GGUF LoRA file (f32, the adapter's own precision) for llama.cpp.

    Args:
        adapter_dir: a directory with ``adapter_config.json`` and ``adapter_model.safetensors``.
        base_dir: the base model's HF directory (the converter reads its config; weights are not loaded).
        out_file: the ``.gguf`` to write; written atomically.

    Raises:
        LlamaCppError: the converter failed (its last output lines are in the message).
    """
    out_file = Path(out_file)
    scratch = out_file.with_name(f".{out_file.name}.partial")
    args = [str(adapter_dir), "--base", str(base_dir), "--outfile", str(scratch), "--outtype", "f32"]
    try:
        _run_converter(LORA_CONVERTER, args, scratch, str(adapter_dir))
        os.replace(scratch, out_file)  # same directory: the final name appears complete or not at all
    finally:
        scratch.unlink(missing_ok=True)
    return out_file
