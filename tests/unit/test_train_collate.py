"""Completion-only masking, overlength handling, length-grouped batches and the loss/schedule calculations."""

from __future__ import annotations

import math

import pytest
import torch

from tunewise.errors import InputError
from tunewise.models.loading import load_tokenizer
from tunewise.records import Example
from tunewise.train.batching import epoch_plan, padding_fraction, shard
from tunewise.train.collate import IGNORE_INDEX, encode_conversation, encode_examples, pad_batch
from tunewise.train.steps import lr_factor, scaled_micro_loss, token_loss_sum, total_optimizer_steps


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load_tokenizer(tiny_model_dir)


def _labelled_text(tokenizer, encoded) -> str:
    return tokenizer.decode(
        [t for t, label in zip(encoded.input_ids, encoded.labels, strict=False) if label != IGNORE_INDEX]
    )


def test_prompt_positions_are_masked_and_answer_plus_eos_labelled(tokenizer):
    messages = [
        {"role": "system", "content": "Extract."},
        {"role": "user", "content": "TOTAL 9.00"},
        {"role": "assistant", "content": '{"total": "9.00"}'},
    ]
    encoded = encode_conversation(tokenizer, messages)
    assert _labelled_text(tokenizer, encoded) == '{"total": "9.00"}<|im_end|>'
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, tokenize=False)
    n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert all(label == IGNORE_INDEX for label in encoded.labels[:n_prompt])
    # the end-of-turn token (== pad token) is labelled: masking by pad id would have dropped it
    eos_positions = [i for i, t in enumerate(encoded.input_ids) if t == tokenizer.eos_token_id]
    assert encoded.labels[eos_positions[-1]] == tokenizer.eos_token_id
    assert tokenizer.pad_token_id == tokenizer.eos_token_id


def test_multi_turn_labels_every_assistant_turn_and_no_user_turn(tokenizer):
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yes"},
        {"role": "user", "content": "again"},
        {"role": "assistant", "content": "no"},
    ]
    encoded = encode_conversation(tokenizer, messages)
    assert _labelled_text(tokenizer, encoded) == "yes<|im_end|>no<|im_end|>"
    text = tokenizer.decode(
        [t for t, label in zip(encoded.input_ids, encoded.labels, strict=False) if label == IGNORE_INDEX]
    )
    assert "hi" in text and "again" in text and "tiny test model" in text  # the injected system prompt is masked too


def test_conversation_without_assistant_is_an_error(tokenizer):
    with pytest.raises(InputError, match="no assistant turn"):
        encode_conversation(tokenizer, [{"role": "user", "content": "hi"}], example_id="x1")


def _examples(n: int, long: int = 0) -> list[Example]:
    rows = [Example(id=f"e{i}", messages=[{"role": "user", "content": f"TOTAL {i}"}], target="x") for i in range(n)]
    rows += [
        Example(id=f"long{i}", messages=[{"role": "user", "content": "CASH " * 200}], target="x") for i in range(long)
    ]
    return rows


@pytest.mark.parametrize("policy", ["drop", "truncate"])
def test_overlength_is_reported_and_dropped_or_truncated(tokenizer, policy):
    examples = _examples(3, long=2)
    kept, report = encode_examples(tokenizer, examples, [e.target for e in examples], max_length=64, overlength=policy)
    assert report.overlength == 2 and report.overlength_ids == ["long0", "long1"]
    assert "2 of 5 examples exceed max_length=64" in report.describe()
    # truncation keeps the head, which here holds no answer token: such rows are dropped as well
    assert len(kept) == 3 and report.dropped == 2
    assert all(len(e.input_ids) <= 64 for e in kept)


def test_truncate_keeps_rows_that_still_have_targets(tokenizer):
    examples = [Example(id="a", messages=[{"role": "user", "content": "hi"}], target="CASH " * 100)]
    kept, report = encode_examples(tokenizer, examples, [examples[0].target], max_length=40, overlength="truncate")
    assert report.truncated == 1 and len(kept[0].input_ids) == 40 and kept[0].target_tokens > 0


def test_pad_batch_masks_padding(tokenizer):
    examples = _examples(2)
    kept, _ = encode_examples(
        tokenizer,
        [examples[0], Example("b", [{"role": "user", "content": "a much longer prompt"}], "x")],
        ["x", "x"],
        max_length=512,
        overlength="drop",
    )
    batch = pad_batch(kept, tokenizer.pad_token_id)
    short = min(range(2), key=lambda i: len(kept[i].input_ids))
    n = len(kept[short].input_ids)
    assert batch["attention_mask"][short, n:].sum() == 0
    assert (batch["labels"][short, n:] == IGNORE_INDEX).all()


def test_length_grouping_reduces_padding_and_is_deterministic():
    lengths = [10 + (i * 37) % 500 for i in range(256)]
    grouped = epoch_plan(lengths, 4, seed=0, epoch=0)
    plain = epoch_plan(lengths, 4, seed=0, epoch=0, group_by_length=False)
    assert sorted(i for b in grouped for i in b) == list(range(256))
    assert padding_fraction(lengths, grouped) < 0.1 < padding_fraction(lengths, plain)
    assert grouped == epoch_plan(lengths, 4, seed=0, epoch=0)
    assert grouped != epoch_plan(lengths, 4, seed=0, epoch=1)
    parts = [shard(grouped, r, 3) for r in range(3)]
    assert len({len(p) for p in parts}) == 1


def test_loss_normalisation_matches_one_big_batch():
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 11, requires_grad=True)
    labels = torch.randint(0, 11, (4, 6))
    labels[0, :5] = IGNORE_INDEX  # a micro-batch with few targets must not be over-weighted
    labels[:, 0] = IGNORE_INDEX
    full_sum, full_count = token_loss_sum(logits, labels)
    reference = torch.autograd.grad(full_sum / full_count, logits)[0]
    total = 0
    for part in (slice(0, 1), slice(1, 4)):  # two unequal micro-batches
        loss_sum, _ = token_loss_sum(logits[part], labels[part])
        total = total + scaled_micro_loss(loss_sum, full_count)
    accumulated = torch.autograd.grad(total, logits)[0]
    assert torch.allclose(accumulated, reference, atol=1e-7)
    # two processes, gradients averaged: each scales by world_size
    halves = [token_loss_sum(logits[s], labels[s])[0] for s in (slice(0, 2), slice(2, 4))]
    averaged = sum(torch.autograd.grad(scaled_micro_loss(h, full_count, 2), logits)[0] for h in halves) / 2
    assert torch.allclose(averaged, reference, atol=1e-7)


def test_no_target_tokens_gives_zero_loss_and_step_needs_targets():
    loss, count = token_loss_sum(torch.randn(1, 3, 5), torch.full((1, 3), IGNORE_INDEX))
    assert count == 0 and float(loss) == 0.0
    with pytest.raises(ValueError):
        scaled_micro_loss(loss, 0)


def test_lr_schedule_and_total_steps():
    assert lr_factor(0, 100, 10, "cosine") == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "cosine") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(99, 100, 0, "constant") == 1.0
    assert lr_factor(100, 100, 0, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert total_optimizer_steps(10, 4, 1, None) == 3
    assert total_optimizer_steps(10, 4, 2.5, None) == math.ceil(25 / 4)
    assert total_optimizer_steps(10, 4, 1, 7) == 7


def test_output_head_only_where_labelled_gives_the_same_loss(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from tunewise.train.steps import kept_loss_sum, label_positions

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    ids = torch.randint(3, 300, (3, 20))
    labels = torch.full((3, 20), IGNORE_INDEX)
    labels[0, 12:18], labels[1, 15:20], labels[2, 10:14] = ids[0, 12:18], ids[1, 15:20], ids[2, 10:14]
    full_sum, full_count = token_loss_sum(model(ids).logits, labels)
    positions = label_positions(labels)
    assert positions.tolist() == list(range(9, 19))
    kept_sum, kept_count = kept_loss_sum(model(ids, logits_to_keep=positions).logits, labels, positions)
    assert kept_count == full_count == 15
    assert torch.allclose(kept_sum, full_sum, atol=1e-5)
    none = torch.full((1, 5), IGNORE_INDEX)
    loss, count = kept_loss_sum(torch.zeros(1, 1, 7), none, label_positions(none))
    assert count == 0 and float(loss) == 0.0
