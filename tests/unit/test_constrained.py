"""xgrammar glue: grammar caching, one fresh processor per call, masking that only admits the schema's JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunewise.models.constrained import compile_json_schema, json_schema_logits_processor

SCHEMA = {"type": "object", "properties": {"label": {"enum": ["yes", "no"]}}, "required": ["label"]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from tunewise.models.loading import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def test_compiled_grammar_is_cached_per_schema(tokenizer: Any) -> None:
    first = compile_json_schema(tokenizer, SCHEMA)
    assert compile_json_schema(tokenizer, dict(reversed(list(SCHEMA.items())))) is first  # key order is irrelevant
    other = {**SCHEMA, "additionalProperties": False}
    assert compile_json_schema(tokenizer, other) is not first


def test_each_call_returns_a_fresh_processor(tokenizer: Any) -> None:
    a = json_schema_logits_processor(tokenizer, SCHEMA, 2)
    b = json_schema_logits_processor(tokenizer, SCHEMA, 2)
    assert a is not b


def test_processor_masks_everything_but_the_grammar(tokenizer: Any) -> None:
    """Greedy decoding under the mask, with logits that favour a wrong token at every step, spells the JSON."""
    import torch

    vocab = len(tokenizer)
    processor = json_schema_logits_processor(tokenizer, SCHEMA, 2)
    wrong = tokenizer.convert_tokens_to_ids("T")
    ids = torch.zeros((2, 1), dtype=torch.long)
    generated: list[list[int]] = [[], []]
    for _ in range(40):
        scores = torch.zeros((2, vocab))
        scores[:, wrong] = 10.0
        scores[1, tokenizer.eos_token_id] = 20.0  # row 1 would stop at once without the grammar
        next_ids = processor(ids, scores).argmax(dim=-1)
        for row in range(2):
            generated[row].append(int(next_ids[row]))
        ids = torch.cat([ids, next_ids[:, None]], dim=1)
        if all(tokenizer.eos_token_id in g for g in generated):
            break
    for row in generated:
        text = tokenizer.decode(row[: row.index(tokenizer.eos_token_id)])
        assert text in ('{"label": "yes"}', '{"label": "no"}')


def test_processor_is_for_one_batch_shape(tokenizer: Any) -> None:
    import torch

    processor = json_schema_logits_processor(tokenizer, SCHEMA, 2)
    with pytest.raises(ValueError, match="batches of 2"):
        processor(torch.zeros((3, 1), dtype=torch.long), torch.zeros((3, len(tokenizer))))


def test_bad_schema_and_batch_size(tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="json_schema"):
        json_schema_logits_processor(tokenizer, {"type": "nonsense"}, 1)
    with pytest.raises(ValueError, match="batch_size"):
        json_schema_logits_processor(tokenizer, SCHEMA, 0)
