"""LlamaCppBackend (``engine: llamacpp``) on the embedded model with the real ``llama-server``.

Not on the tiny test model: llama.cpp's converter refuses its home-made BPE tokenizer ("BPE pre-tokenizer was not
recognized"). Needs the llama-server build (minutes, once, cached) and the GGUF LoRA converter (the llama-cpp-python
sdist, cached). A few short prompts with a small ``max_tokens`` keep this under a minute on 2 cores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tunewise.config import EMBEDDED_MODEL
from tunewise.llamacpp import ServerPlan, ServerProcess, llama_server_binary
from tunewise.models.base import GenerationConfig
from tunewise.models.gguf_files import base_gguf
from tunewise.models.llamacpp import LlamaCppBackend
from tunewise.models.local import LocalBackend

pytestmark = pytest.mark.integration

# Prompts whose greedy answers are no near-tie for the Q4_1 model: llama.cpp's quantized kernels and transformers'
# dequantized fp32 agree on them (on "What is the capital of France?" they do not: the first token is a near-tie).
PROMPTS = [
    "Name three primary colours.",
    "Write the number seven in digits.",
    "Translate 'good morning' into French.",
    "What is 12 times 3?",
    "Give one word that rhymes with cat.",
]
CONFIG = GenerationConfig(max_new_tokens=16)


def _conversations(prompts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": p}] for p in prompts]


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(EMBEDDED_MODEL, parallel=4)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT LoRA with random A and B (``init_lora_weights=False``): no training, yet it changes every answer."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tunewise.models.loading import load_model

    out = tmp_path_factory.mktemp("adapter")
    torch.manual_seed(0)
    model, _ = load_model(EMBEDDED_MODEL, device="cpu", dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    (out / "metadata.json").write_text(json.dumps({"base_model": EMBEDDED_MODEL}))
    return out


def test_greedy_output_equals_llama_server_answering_one_request_at_a_time(engine: LlamaCppBackend) -> None:
    completions = engine.generate(_conversations(PROMPTS), CONFIG)
    plan = ServerPlan(binary=llama_server_binary(), model=base_gguf(EMBEDDED_MODEL), parallel=1)
    server = ServerProcess(plan)
    server.start()
    try:
        for conversation, completion in zip(_conversations(PROMPTS), completions, strict=True):
            body = {"messages": conversation, "temperature": 0, "max_tokens": CONFIG.max_new_tokens}
            answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=120).json()
            assert completion.text == answer["choices"][0]["message"]["content"]
            assert completion.completion_tokens == answer["usage"]["completion_tokens"]
    finally:
        server.stop()


def test_outputs_and_token_counts_match_the_transformers_backend(engine: LlamaCppBackend) -> None:
    reference = LocalBackend(EMBEDDED_MODEL)
    expected = reference.generate(_conversations(PROMPTS[:3]), GenerationConfig(max_new_tokens=16, batch_size=1))
    got = engine.generate(_conversations(PROMPTS[:3]), CONFIG)
    # Token counts: the same tokenizer and chat template (with its default system prompt), the end-of-turn included.
    assert [(c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) for c in got] == [
        (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) for c in expected
    ]
    texts = ["Hello world", "TOTAL 12.50 RM <|im_end|>", '{"date": "25/12/2018"}', "  spaced\n\nlines  "]
    assert [engine.count_tokens(t) for t in texts] == [reference.count_tokens(t) for t in texts]


def test_order_is_kept_under_concurrency(engine: LlamaCppBackend) -> None:
    # Prompts of very different lengths finish out of order; each answer's prompt size says whose answer it is.
    prompts = [("word " * n).strip() + " Summarise." for n in (60, 1, 35, 3, 80, 10, 20, 2)]
    completions = engine.generate(_conversations(prompts), GenerationConfig(max_new_tokens=8))
    overhead = completions[1].prompt_tokens - engine.count_tokens(prompts[1])  # the chat template's tokens
    assert [c.prompt_tokens for c in completions] == [engine.count_tokens(p) + overhead for p in prompts]


def test_json_schema_output_parses_and_validates(engine: LlamaCppBackend) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string"}, "count": {"type": "integer"}},
        "required": ["colour", "count"],
        "additionalProperties": False,
    }
    prompts = ["Name a colour and how many letters it has, as JSON.", "Describe the sky as JSON."]
    for completion in engine.generate(_conversations(prompts), GenerationConfig(max_new_tokens=40, json_schema=schema)):
        assert completion.finish_reason == "stop", completion.text
        jsonschema.validate(json.loads(completion.text), schema)


def test_identity_differs_from_the_transformers_engine(engine: LlamaCppBackend, adapter: Path) -> None:
    identity = engine.identity()
    assert identity != LocalBackend(EMBEDDED_MODEL).identity()
    assert identity["engine"] == "llamacpp" and identity["lora_sha256"] is None
    adapted = LlamaCppBackend(EMBEDDED_MODEL, adapter=adapter).identity()
    assert adapted["gguf_sha256"] == identity["gguf_sha256"] and adapted["lora_sha256"]


def test_an_adapter_changes_the_output(engine: LlamaCppBackend, adapter: Path) -> None:
    conversations = _conversations(PROMPTS[:2])
    base = engine.generate(conversations, CONFIG)
    tuned = LlamaCppBackend(EMBEDDED_MODEL, adapter=adapter, parallel=2)
    try:
        adapted = tuned.generate(conversations, CONFIG)
        reference = LocalBackend(EMBEDDED_MODEL, adapter=adapter).generate(
            conversations, GenerationConfig(max_new_tokens=CONFIG.max_new_tokens, batch_size=1)
        )
    finally:
        tuned.close()
    assert all(a.text != b.text for a, b in zip(adapted, base, strict=True))
    # The GGUF LoRA is the PEFT adapter: its first tokens are what transformers + PEFT generates.
    assert all(a.text[:10] == r.text[:10] for a, r in zip(adapted, reference, strict=True)), (adapted, reference)
