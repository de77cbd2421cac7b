"""The fallback engine: transformers in this process (any HF directory, PEFT adapters), one request at a time.

No batching across requests and ~20 tokens/s on CPU for the embedded model: it exists for models llama.cpp cannot
load and for tests on tiny models; ``llamacpp`` is the engine to serve with.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from tunewise.config import ServeSpec
from tunewise.models.local import LocalBackend
from tunewise.serve.catalog import ServedModel
from tunewise.serve.engines import EngineRejected


class TransformersEngine:
    name = "transformers"

    def __init__(self, spec: ServeSpec) -> None:
        self.spec = spec
        self._backends: dict[str, LocalBackend] = {}
        self._lock = threading.Lock()
        self._ready = False

    async def start(self, models: Sequence[ServedModel]) -> None:
        await self.update(models)
        base = next(m for m in models if m.kind == "base")
        await asyncio.to_thread(self._backend(base).load)
        self._ready = True

    async def update(self, models: Sequence[ServedModel]) -> None:
        keep = {m.version for m in models}
        for version in [v for v in self._backends if v not in keep]:
            del self._backends[version]

    async def stop(self) -> None:
        self._ready = False

    def ready(self) -> bool:
        return self._ready

    async def chat(self, body: dict[str, Any], model: ServedModel) -> dict[str, Any]:
        text, finish, prompt_tokens, completion_tokens = await asyncio.to_thread(self._generate, body, model, None)
        return {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": _usage(prompt_tokens, completion_tokens),
        }

    async def chat_stream(self, body: dict[str, Any], model: ServedModel) -> AsyncIterator[dict[str, Any]]:
        from transformers import TextIteratorStreamer

        _, tokenizer = await asyncio.to_thread(self._backend(model).load)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self._generate(body, model, streamer)
            except BaseException as error:  # handed to the event loop below
                outcome["error"] = error
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        pieces = iter(streamer)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            if piece:
                yield {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        await asyncio.to_thread(worker.join)
        if "error" in outcome:
            raise outcome["error"]
        _, finish, prompt_tokens, completion_tokens = outcome["result"]
        yield {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        yield {"choices": [], "usage": _usage(prompt_tokens, completion_tokens)}

    # -- internals ---------------------------------------------------------------------------------------------

    def _backend(self, model: ServedModel) -> LocalBackend:
        if model.version not in self._backends:
            self._backends[model.version] = LocalBackend(model.base, adapter=model.adapter_dir, name=model.name)
        return self._backends[model.version]

    def _generate(self, body: dict[str, Any], model: ServedModel, streamer: Any) -> tuple[str, str, int, int]:
        import torch

        backend = self._backend(model)
        hf_model, tokenizer = backend.load()
        rendered = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False)
        prompt = list(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        max_tokens = int(body.get("max_tokens") or self.spec.default_max_tokens)
        if len(prompt) + max_tokens > self.spec.context_length:
            raise EngineRejected(
                f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_tokens}) exceeds the context length "
                f"({self.spec.context_length})"
            )
        temperature = float(body.get("temperature", 1.0))
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0, "num_beams": 1}
        if temperature > 0:
            options.update(temperature=temperature, top_p=float(body.get("top_p", 1.0)), top_k=0)
        stops = _stops(body.get("stop"))
        if stops:
            options.update(stop_strings=stops, tokenizer=tokenizer)
        schema = _schema(body.get("response_format"))
        if schema is not None:
            from transformers import LogitsProcessorList

            from tunewise.models.constrained import json_schema_logits_processor

            vocab = hf_model.get_output_embeddings().weight.shape[0]
            processor = json_schema_logits_processor(tokenizer, schema, 1, vocab_size=vocab)
            options["logits_processor"] = LogitsProcessorList([processor])
        if streamer is not None:
            options["streamer"] = streamer
        with self._lock, torch.inference_mode():
            if body.get("seed") is not None:
                torch.manual_seed(int(body["seed"]))
            ids = torch.tensor([prompt], device=hf_model.device)
            output = hf_model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **options,
            )
        generated = output[0, len(prompt) :].tolist()
        finish = "stop" if tokenizer.eos_token_id in generated else "length"
        if finish == "stop":
            generated = generated[: generated.index(tokenizer.eos_token_id) + 1]
        text = tokenizer.decode(generated, skip_special_tokens=True)
        for stop in stops:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        return text, finish, len(prompt), len(generated)


def _stops(stop: Any) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") == "text":
        return None
    if response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return response_format.get("schema") or {"type": "object"}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
