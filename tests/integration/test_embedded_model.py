"""The embedded SmolLM2-135M through LocalBackend: batched generation and schema-constrained JSON on real receipts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tunewise.models.base import GenerationConfig
from tunewise.models.local import LocalBackend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "examples" / "receipts" / "schema.json").read_text())
INSTRUCTION = (
    'Extract the key fields of this receipt. Answer with one JSON object with the keys "company", "date", '
    '"address" and "total".'
)


@pytest.fixture(scope="module")
def backend() -> LocalBackend:
    return LocalBackend("smollm2-135m")


@pytest.fixture(scope="module")
def receipts() -> list[dict[str, Any]]:
    with (ROOT / "examples" / "receipts" / "data" / "dev.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    # The shortest receipts keep this file fast on 2 cores.
    return sorted(rows, key=lambda row: len(row["text"]))[:2]


def _conversation(receipt: dict[str, Any]) -> list[dict[str, str]]:
    return [{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": receipt["text"]}]


def test_batched_generation_on_two_receipts(backend: LocalBackend, receipts: list[dict[str, Any]]) -> None:
    conversations = [_conversation(r) for r in receipts]
    completions = backend.generate(conversations, GenerationConfig(max_new_tokens=24, batch_size=2))
    assert len(completions) == 2
    for completion in completions:
        assert completion.prompt_tokens > 50 and 0 < completion.completion_tokens <= 24
        assert sum(ch.isalnum() for ch in completion.text) >= 5, completion.text  # words, not noise
        assert "<|im_end|>" not in completion.text and "<|im_start|>" not in completion.text
    assert completions[0].text != completions[1].text
    assert backend.count_tokens(receipts[0]["text"]) < completions[0].prompt_tokens


def test_constrained_decoding_yields_schema_valid_json(backend: LocalBackend, receipts: list[dict[str, Any]]) -> None:
    (completion,) = backend.generate(
        [_conversation(receipts[0])], GenerationConfig(max_new_tokens=96, batch_size=1, json_schema=SCHEMA)
    )
    assert completion.finish_reason == "stop", completion.text
    jsonschema.validate(json.loads(completion.text), SCHEMA)


def test_constrained_decoding_reuses_an_admitted_greedy_decode_which_is_what_it_would_generate(
    receipts: list[dict[str, Any]],
) -> None:
    """One-shot prompts make the model answer in schema-valid JSON unconstrained; the grammar then changes nothing."""
    shot, target = receipts
    conversations = [
        [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": first["text"]},
            {"role": "assistant", "content": json.dumps(first["fields"])},
            {"role": "user", "content": second["text"]},
        ]
        for first, second in ((shot, target), (target, shot))
    ]
    unconstrained_config = GenerationConfig(max_new_tokens=160, batch_size=2)
    constrained_config = GenerationConfig(max_new_tokens=160, batch_size=2, json_schema=SCHEMA)
    backend = LocalBackend("smollm2-135m")
    greedy = backend.generate(conversations, unconstrained_config)
    assert [c.finish_reason for c in greedy] == ["stop", "stop"], [c.text for c in greedy]
    model, _ = backend.load()
    forwards: list[int] = []
    hook = model.register_forward_hook(lambda *_: forwards.append(1))
    reused = backend.generate(conversations, constrained_config)
    hook.remove()
    assert not forwards and [c.text for c in reused] == [c.text for c in greedy]
    generated = LocalBackend("smollm2-135m").generate(conversations, constrained_config)  # nothing to reuse
    assert [c.text for c in generated] == [c.text for c in greedy]
