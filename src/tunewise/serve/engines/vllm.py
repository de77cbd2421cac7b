"""The GPU engine: ``vllm serve`` with every adapter as a LoRA module, behind the same front.

Install with the ``gpu`` extra (``pip install 'tunewise[gpu]'``) on a machine with a CUDA GPU. Adapters are PEFT
directories (vLLM loads them as they are); a request for an adapter sends its name as vLLM's ``model``.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewise.config import ServeSpec
from tunewise.errors import InputError
from tunewise.llamacpp.server import LaunchPlan
from tunewise.models.embedded import resolve_model_path
from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines import EngineUnavailable


@dataclass(frozen=True)
class VllmPlan:
    """The ``vllm serve`` command line for one base and its adapters."""

    base_dir: str
    base_name: str
    adapters: tuple[tuple[str, str], ...]
    """(served name, PEFT directory) for every adapter."""
    max_lora_rank: int
    parallel: int
    context_length: int
    gpu_memory_utilization: float
    executable: tuple[str, ...] = ("vllm",)
    host: str = "127.0.0.1"
    port: int = 0

    def argv(self, port: int | None = None) -> list[str]:
        argv = [*self.executable, "serve", self.base_dir, "--host", self.host, "--port", str(port or self.port)]
        argv += ["--served-model-name", self.base_name, "--max-num-seqs", str(self.parallel)]
        argv += ["--max-model-len", str(self.context_length)]
        argv += ["--gpu-memory-utilization", str(self.gpu_memory_utilization)]
        if self.adapters:
            argv += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank)]
            argv += ["--max-loras", str(min(len(self.adapters), 8)), "--lora-modules"]
            argv += [json.dumps({"name": n, "path": p, "base_model_name": self.base_name}) for n, p in self.adapters]
        return argv


class VllmDriver:
    name = "vllm"

    def __init__(self, spec: ServeSpec, *, executable: Sequence[str] | None = None) -> None:
        """``executable``: the command that runs vLLM's CLI (default: found on this machine, or an error)."""
        self.spec = spec
        self.executable = tuple(executable) if executable is not None else None

    def plan(self, models: Sequence[ServedModel]) -> VllmPlan:
        base = next(m for m in models if m.kind == "base")
        adapters = [m for m in models if m.adapter_dir is not None]
        ranks = [m.lora_rank or 16 for m in adapters]
        return VllmPlan(
            base_dir=str(resolve_model_path(base.base)),
            base_name=base.name,
            adapters=tuple((m.name, str(m.adapter_dir)) for m in adapters),
            # vLLM accepts ranks from a fixed set; the smallest one that fits every adapter
            max_lora_rank=next((r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= max(ranks, default=8)), 512),
            parallel=self.spec.parallel,
            context_length=self.spec.context_length,
            gpu_memory_utilization=self.spec.gpu_memory_utilization,
            executable=self.executable or _vllm_executable(),
        )

    def translate(self, body: dict[str, Any], model: ServedModel, plan: LaunchPlan) -> dict[str, Any]:
        assert isinstance(plan, VllmPlan)
        if model.adapter_dir is not None and model.name not in dict(plan.adapters):
            raise EngineUnavailable(f"{model.name} is still being loaded")
        payload = dict(body)
        payload["model"] = model.name if model.adapter_dir is not None else plan.base_name
        if payload.get("stream"):
            payload["stream_options"] = {"include_usage": True}
        return payload


def _vllm_executable() -> tuple[str, ...]:
    found = shutil.which("vllm")
    if found:
        return (found,)
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        return (sys.executable, "-m", "vllm.entrypoints.cli.main")
    raise InputError(
        "engine 'vllm' needs vLLM on a machine with a CUDA GPU: pip install 'tunewise[gpu]' (or use engine: llamacpp)",
        field="serve.engine",
    )
