"""The CPU engine: llama.cpp's own ``llama-server`` (continuous batching over slots, per-request LoRA, grammars).

The base is one GGUF; every adapter is a GGUF LoRA loaded at start, and each request sets every adapter's scale
(1 for the one it names, 0 for the others; all 0 for the base), so one process serves them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunewise.config import ServeSpec
from tunewise.llamacpp.build import llama_server_binary
from tunewise.llamacpp.server import LaunchPlan, ServerPlan
from tunewise.models.gguf_files import base_gguf, lora_gguf
from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines import EngineUnavailable


@dataclass(frozen=True)
class LlamaCppPlan:
    """A :class:`ServerPlan` plus which LoRA id serves which adapter version."""

    server: ServerPlan
    lora_ids: dict[str, int] = field(default_factory=dict)
    """Adapter version (content hash) -> its index in ``--lora`` order."""

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def argv(self, port: int | None = None) -> list[str]:
        return self.server.argv(port)


class LlamaCppDriver:
    name = "llamacpp"

    def __init__(self, spec: ServeSpec, *, announce: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.announce = announce

    def plan(self, models: Sequence[ServedModel]) -> LlamaCppPlan:
        base = next(m for m in models if m.kind == "base")
        adapters = sorted({m.version: m for m in models if m.adapter_dir is not None}.values(), key=lambda m: m.version)
        server = ServerPlan(
            binary=llama_server_binary(announce=self.announce),
            model=base_gguf(base.base, base.version),
            loras=tuple(lora_gguf(m.adapter_dir, m.base, m.version) for m in adapters if m.adapter_dir),
            parallel=self.spec.parallel,
            context_per_slot=self.spec.context_length,
            threads=self.spec.threads,
        )
        return LlamaCppPlan(server, {m.version: index for index, m in enumerate(adapters)})

    def translate(self, body: dict[str, Any], model: ServedModel, plan: LaunchPlan) -> dict[str, Any]:
        assert isinstance(plan, LlamaCppPlan)
        payload = dict(body)
        if model.adapter_dir is not None and model.version not in plan.lora_ids:
            # never answer for an adapter with the base: wait for the engine that has it loaded
            raise EngineUnavailable(f"{model.name} is still being loaded")
        wanted = plan.lora_ids.get(model.version) if model.adapter_dir is not None else None
        # Every adapter's scale, explicitly: llama-server applies its global scales (1.0 for each --lora, whatever
        # --lora-init-without-apply says in this version) to a request whose list is empty.
        payload["lora"] = [{"id": i, "scale": 1.0 if i == wanted else 0.0} for i in sorted(plan.lora_ids.values())]
        if payload.get("stream"):
            payload["stream_options"] = {"include_usage": True}  # the log needs the token counts
        return payload
