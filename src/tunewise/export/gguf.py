"""HF safetensors directory -> GGUF (f16, q8_0) with llama.cpp's ``convert_hf_to_gguf.py``.

The converter is not on PyPI as a module; it ships inside the llama-cpp-python *source* distribution
(``vendor/llama.cpp/``). The first export downloads that sdist with pip (no build, no dependencies) and keeps only
the converter, its ``conversion`` package and the matching ``gguf-py`` in the tunewise cache; later exports are
offline. ``$TUNEWISE_LLAMA_CPP_SDIST`` may point at an already downloaded sdist tarball (air-gapped machines).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunewise.errors import InputError, TunewiseError
from tunewise.io.atomic import atomic_dir
from tunewise.models.embedded import cache_root

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
GGUF_TYPES = ("f16", "q8_0", "bf16", "f32")
CONVERTER = "convert_hf_to_gguf.py"
SDIST_ENV = "TUNEWISE_LLAMA_CPP_SDIST"
"""An already downloaded llama-cpp-python sdist tarball (machines without network)."""
_KEEP = (CONVERTER, "conversion/", "gguf-py/gguf/", "gguf-py/LICENSE", "LICENSE")


class ExportError(TunewiseError):
    """An export step failed (converter missing or crashed, parity out of tolerance)."""


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


def cached_converter_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where :func:`converter_dir` keeps the converter of ``version`` once fetched (it may not be there yet)."""
    return cache_root() / "llama.cpp-convert" / version


def converter_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The directory holding ``convert_hf_to_gguf.py`` (fetched into the cache on first use).

    Raises:
        ExportError: the sdist can be neither found nor downloaded; the message says how to fix it.
    """
    target = cached_converter_dir(version)
    if (target / CONVERTER).is_file():
        return target
    sdist = os.environ.get(SDIST_ENV)
    with tempfile.TemporaryDirectory(prefix="tunewise-sdist-") as download:
        tarball = Path(sdist) if sdist else _download_sdist(version, Path(download))
        if not tarball.is_file():
            raise ExportError(f"{SDIST_ENV}={sdist} is not a file")
        try:
            with atomic_dir(target) as tmp:
                _extract_converter(tarball, tmp)
        except FileExistsError:
            pass  # another process extracted it meanwhile
    return target


def _download_sdist(version: str, directory: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"llama-cpp-python=={version}",
        "--no-deps",
        "--no-binary",
        ":all:",
        "-d",
        str(directory),
        "--quiet",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(directory.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ExportError(
            "GGUF export needs llama.cpp's convert_hf_to_gguf.py, taken from the llama-cpp-python source distribution, "
            f"and downloading it failed ({' / '.join(tail) or 'no file'}). Fix: on a machine with PyPI access run "
            f"`pip download llama-cpp-python=={version} --no-deps --no-binary :all:` and set "
            "TUNEWISE_LLAMA_CPP_SDIST=<path to the .tar.gz>, or export without --gguf."
        )
    return found[0]


def _extract_converter(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            parts = member.name.split("/", 3)
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"] or not member.isfile():
                continue
            relative = parts[3]
            if relative.startswith(_KEEP) or relative in _KEEP:
                member.name = relative
                members.append(member)
        if not any(m.name == "convert_hf_to_gguf.py" for m in members):
            raise ExportError(f"{tarball}: no vendor/llama.cpp/convert_hf_to_gguf.py inside")
        archive.extractall(target, members=members, filter="data")


def convert_to_gguf(model_dir: str | Path, out_file: str | Path, outtype: str) -> Path:
    """Convert a safetensors HF model directory to one GGUF file.

    Args:
        model_dir: a directory ``save_pretrained`` wrote (config, safetensors, tokenizer).
        out_file: the ``.gguf`` to write.
        outtype: ``f16``, ``q8_0``, ``bf16`` or ``f32``.

    Returns:
        ``out_file``.

    Raises:
        ExportError: an unknown type, or the converter failed (its last output lines are in the message).
    """
    if outtype not in GGUF_TYPES:
        raise ExportError(f"unknown GGUF type {outtype!r} (supported: {', '.join(GGUF_TYPES)})")
    script = converter_dir() / "convert_hf_to_gguf.py"
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that matches the converter, not the installed gguf
    command = [sys.executable, str(script), str(model_dir), "--outfile", str(out_file), "--outtype", outtype]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not out_file.is_file():
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        hint = ""
        if any("pre-tokenizer was not recognized" in line for line in lines):
            hint = (
                " (llama.cpp does not know this tokenizer's pre-tokenizer; "
                "GGUF export supports the tokenizers it lists)"
            )
        raise ExportError(f"convert_hf_to_gguf.py failed for {model_dir}{hint}:\n" + "\n".join(lines[-8:]))
    return out_file


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
