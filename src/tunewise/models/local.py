"""The ``local`` backend: a transformers causal LM (plus an optional PEFT adapter) generating in batches.

Decoding is greedy and deterministic. Prompts are rendered with the tokenizer's chat template
(``add_generation_prompt=True``), sorted by length so each batch pads as little as possible, left-padded, and
generated with the KV cache; the completions come back in input order.

Latency: a batch's rows are generated together, so ``Completion.latency_ms`` is the wall time of the batch the
example was in (what a caller submitting that batch waits for), not a per-example time that was never measured.

Constrained decoding reuses an earlier unconstrained decode of the same prompt when the grammar admits it (the
result is the same sequence: :mod:`tunewise.models.decode_memo`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunewise.errors import BackendError
from tunewise.io.atomic import atomic_write_text, file_sha256
from tunewise.models.base import GenerationConfig, ProgressCallback
from tunewise.models.decode_memo import DecodeMemo
from tunewise.models.embedded import cache_root, resolve_model_path
from tunewise.models.loading import load_model, load_tokenizer, pick_device, pick_dtype
from tunewise.records import Completion, Message

# Files that never change what a model generates; everything else in a model or adapter directory is hashed.
_IGNORED_FILES = {"README.md", "readme.md", "LICENSE", "LICENSE.txt", "NOTICE"}


class LocalBackend:
    """A transformers model (embedded name or HF directory), optionally with a PEFT adapter. Loads lazily."""

    self_hosted = True

    def __init__(
        self,
        path: str | Path,
        *,
        adapter: str | Path | None = None,
        name: str | None = None,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        """Describe the model; nothing is loaded until the first :meth:`generate` (or :meth:`count_tokens`).

        Args:
            path: An embedded model name (``smollm2-135m``) or a Hugging Face model directory.
            adapter: A PEFT adapter directory applied on top of the model.
            name: The name shown in reports; defaults to ``path``.
            device: ``"cpu"``, ``"cuda"``, ...; default: CUDA when available.
            dtype: A torch dtype; default: bf16 on a bf16-capable GPU, fp32 otherwise.
        """
        self.path = str(path)
        self.adapter = str(adapter) if adapter is not None else None
        self.name = name or self.path
        self._device = device
        self._dtype = dtype
        self._model: Any = None
        self._tokenizer: Any = None
        self._identity: dict[str, Any] | None = None
        self._load_lock = threading.Lock()
        self._decodes = DecodeMemo()

    # -- loading ---------------------------------------------------------------------------------------------

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return ``(model, tokenizer)``; the tokenizer pads on the left.

        Raises:
            BackendError: the model or the adapter directory cannot be found.
        """
        with self._load_lock:
            if self._model is None:
                _quiet_transformers()

                if self.adapter is not None and not Path(self.adapter).is_dir():
                    raise BackendError(f"adapter directory not found: {self.adapter}")
                model, tokenizer = load_model(self.path, adapter=self.adapter, device=self._device, dtype=self._dtype)
                tokenizer.padding_side = "left"
                self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            _quiet_transformers()

            self._tokenizer = load_tokenizer(self.path)
            self._tokenizer.padding_side = "left"
        return self._tokenizer

    def close(self) -> None:
        """Drop the model and tokenizer (frees memory; the next :meth:`generate` loads them again)."""
        self._model = None
        self._tokenizer = None

    # -- the Backend protocol ---------------------------------------------------------------------------------

    def generate(
        self,
        conversations: list[list[Message]],
        config: GenerationConfig,
        progress: ProgressCallback | None = None,
    ) -> list[Completion]:
        """Complete every conversation greedily, in batches of ``config.batch_size``; results in input order.

        Args:
            conversations: Chat conversations (OpenAI-style messages), each ending where the model should answer.
            config: ``max_new_tokens``, ``batch_size`` and an optional ``json_schema`` (constrained decoding).
            progress: Called with the batch size after each batch.

        Returns:
            One :class:`Completion` per conversation, in input order.

        Raises:
            BackendError: the model or adapter cannot be loaded.
            ValueError: ``json_schema`` cannot be compiled to a grammar.
        """
        if not conversations:
            return []
        if config.batch_size < 1 or config.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")
        _, tokenizer = self.load()
        prompts = [self._prompt_ids(tokenizer, conversation) for conversation in conversations]
        results: list[Completion | None] = [None] * len(prompts)
        if config.json_schema is not None:
            admits = self._grammar_admits(config.json_schema)
            results = [self._decodes.constrained(prompt, config.max_new_tokens, admits) for prompt in prompts]
            reused = sum(result is not None for result in results)
            if progress is not None and reused:
                progress(reused)
        todo = [i for i, result in enumerate(results) if result is None]
        order = sorted(todo, key=lambda i: (len(prompts[i]), i))
        for start in range(0, len(order), config.batch_size):
            chunk = order[start : start + config.batch_size]
            for index, completion in zip(chunk, self._generate_batch([prompts[i] for i in chunk], config), strict=True):
                results[index] = completion
            if progress is not None:
                progress(len(chunk))
        return [c for c in results if c is not None]

    def identity(self) -> dict[str, Any]:
        """SHA-256 of the model's and the adapter's files, and the device/dtype (bf16 and fp32 decode differently).

        Hashes are cached in memory and on disk (keyed by path, size and mtime), so this is cheap after the first call.
        """
        if self._identity is None:
            device = self._device or pick_device()
            dtype = self._dtype or pick_dtype(device)
            self._identity = {
                "backend": "local",
                "model_sha256": directory_sha256(resolve_model_path(self.path)),
                "adapter_sha256": directory_sha256(Path(self.adapter)) if self.adapter is not None else None,
                "device": str(device).split(":")[0],
                "dtype": str(dtype).removeprefix("torch."),
            }
        return self._identity

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under this model's tokenizer (no special tokens added)."""
        return len(self._get_tokenizer()(text, add_special_tokens=False)["input_ids"])

    # -- internals ---------------------------------------------------------------------------------------------

    def answer_nll(self, conversations: list[list[Message]], answers: list[str]) -> list[tuple[float, int]]:
        """Teacher-forced negative log-likelihood of each answer after its conversation's generation prompt.

        Returns:
            Per pair, ``(sum of -log p over the answer's tokens in nats, number of answer tokens)``; the answer is
            tokenized without special tokens and the end-of-turn token is not scored.
        """
        import torch

        model, tokenizer = self.load()
        scores = []
        with torch.inference_mode():
            for conversation, answer in zip(conversations, answers, strict=True):
                prompt = self._prompt_ids(tokenizer, conversation)
                target = list(tokenizer(answer, add_special_tokens=False)["input_ids"])
                if not target:
                    raise ValueError("an empty answer has no likelihood to score")
                ids = torch.tensor([prompt + target], device=model.device)
                logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
                picked = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(prompt) :, None])
                scores.append((float(-picked.sum()), len(target)))
        return scores

    @staticmethod
    def _prompt_ids(tokenizer: Any, conversation: list[Message]) -> list[int]:
        rendered = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def _generate_batch(self, prompts: list[list[int]], config: GenerationConfig) -> list[Completion]:
        import torch

        model, tokenizer = self.load()
        width = max(len(p) for p in prompts)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
        attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        extra: dict[str, Any] = {}
        if config.json_schema is not None:
            from transformers import LogitsProcessorList

            from tunewise.models.constrained import json_schema_logits_processor

            vocab_size = model.get_output_embeddings().weight.shape[0]
            processor = json_schema_logits_processor(tokenizer, config.json_schema, len(prompts), vocab_size=vocab_size)
            extra["logits_processor"] = LogitsProcessorList([processor])
        start = time.perf_counter()
        with torch.inference_mode():
            cache = _prefill_one_by_one(model, prompts, width) if len(prompts) > 1 else None
            if cache is not None:
                extra["cache"] = cache
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
                **extra,
            )
        elapsed_ms = (time.perf_counter() - start) * 1000
        completions = []
        for prompt, row in zip(prompts, output[:, width:].tolist(), strict=True):
            tokens, finish = _until_eos(row, tokenizer.eos_token_id)
            text = tokenizer.decode(tokens, skip_special_tokens=True)
            n_tokens = len(tokens) + (1 if finish == "stop" else 0)
            completions.append(Completion(text, len(prompt), n_tokens, elapsed_ms, finish))
            if config.json_schema is None:
                self._decodes.remember(prompt, tokens, completions[-1])
        return completions

    def _grammar_admits(self, schema: dict[str, Any]) -> Callable[[Sequence[int]], bool]:
        """Whether ``schema``'s grammar accepts a decode: then the constrained decode is that same decode."""
        from tunewise.models.constrained import grammar_admits

        model, tokenizer = self.load()
        vocab_size = model.get_output_embeddings().weight.shape[0]
        return lambda tokens: grammar_admits(tokenizer, schema, list(tokens), vocab_size=vocab_size)


def _prefill_one_by_one(model: Any, prompts: list[list[int]], width: int) -> Any:
    """Run each prompt but its last token alone, then stack the KV caches left-padded to ``width - 1``.

    A padded batch prefill computes attention over the padding too (plus a mask): on CPU, for long prompts of
    different lengths, prefill dominates and that waste is up to half of it. Decoding then runs batched from the
    merged cache. Returns ``None`` (use the plain batched prefill) for caches that are not plain per-layer
    key/value tensors (sliding-window or hybrid models) or prompts of one token.
    """
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if min(len(p) for p in prompts) < 2:
        return None
    caches = []
    for prompt in prompts:
        cache = model(torch.tensor([prompt[:-1]], device=model.device), use_cache=True).past_key_values
        if not isinstance(cache, DynamicCache) or any(type(layer) is not DynamicLayer for layer in cache.layers):
            return None
        caches.append(cache)
    merged = DynamicCache()
    for index in range(len(caches[0].layers)):
        keys, values = [], []
        for prompt, cache in zip(prompts, caches, strict=True):
            padding = (0, 0, width - len(prompt), 0)  # pad the sequence dimension (dim 2) on the left
            keys.append(torch.nn.functional.pad(cache.layers[index].keys, padding))
            values.append(torch.nn.functional.pad(cache.layers[index].values, padding))
        merged.update(torch.cat(keys), torch.cat(values), index)
    return merged


def _until_eos(row: list[int], eos_id: int) -> tuple[list[int], str]:
    """The generated tokens before the first eos, and ``"stop"`` (eos seen) or ``"length"`` (cut off)."""
    if eos_id in row:
        return row[: row.index(eos_id)], "stop"
    return row, "length"


def _quiet_transformers() -> None:
    """Silence transformers' progress bars and advisory warnings (users see tunewise's own progress)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def directory_sha256(directory: Path) -> str:
    """One SHA-256 over every file in ``directory`` (recursively; relative path + content hash), docs excluded.

    File hashes are cached in ``<tunewise cache>/file-hashes.json`` keyed by absolute path, size and mtime.

    Raises:
        BackendError: ``directory`` does not exist.
    """
    if not directory.is_dir():
        raise BackendError(f"model or adapter directory not found: {directory}")
    cache = _HashCache.load()
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = file.relative_to(directory).as_posix()
        if file.name in _IGNORED_FILES or any(part.startswith(".") for part in Path(relative).parts):
            continue
        digest.update(f"{relative}\0{cache.sha256(file)}\n".encode())
    cache.save()
    return digest.hexdigest()


class _HashCache:
    """File SHA-256s keyed by (absolute path, size, mtime_ns): re-hashing a multi-GB model on every run is slow."""

    def __init__(self, path: Path, entries: dict[str, str]) -> None:
        self.path = path
        self.entries = entries
        self.dirty = False

    @classmethod
    def load(cls) -> _HashCache:
        path = cache_root() / "file-hashes.json"
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def sha256(self, file: Path) -> str:
        stat = file.stat()
        prefix = f"{file.resolve()}|"
        key = f"{prefix}{stat.st_size}|{stat.st_mtime_ns}"
        if key not in self.entries:
            for stale in [k for k in self.entries if k.startswith(prefix)]:
                del self.entries[stale]
            self.entries[key] = file_sha256(file)
            self.dirty = True
        return self.entries[key]

    def save(self) -> None:
        if self.dirty:
            with contextlib.suppress(OSError):  # a read-only cache only costs re-hashing next time
                atomic_write_text(self.path, json.dumps(self.entries, indent=0, sort_keys=True))
