"""The training speed levers change speed, not results: each against the unoptimised path on the tiny model.

The levers: the output head only at labelled positions (exact, up to float rounding) and the LoRA dropout's faster
mask (the same distribution, other draws: compared in distribution and by where training ends up).
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.support.train_project import make_project, tiny_spec
from tunewise.train import loop, steps, train
from tunewise.train.dropout import FastDropout, use_fast_dropout


def test_fast_dropout_zeroes_a_share_p_and_scales_the_rest():
    dropout = FastDropout(0.05).train()
    x = torch.rand(1000, 1000) + 0.5
    out = dropout(x)
    dropped = (out == 0).float().mean().item()
    sigma = math.sqrt(0.05 * 0.95 / x.numel())
    assert abs(dropped - 0.05) < 5 * sigma
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] * dropout.scale)
    assert abs(dropout.scale - 1 / (1 - 0.05)) < 1e-4
    assert abs(out.mean().item() - x.mean().item()) < 1e-3  # unbiased


def test_fast_dropout_is_seeded_by_torch_and_identity_in_eval():
    dropout = FastDropout(0.3).train()
    x = torch.ones(64, 64)
    torch.manual_seed(1)
    first = dropout(x)
    torch.manual_seed(1)
    assert torch.equal(dropout(x), first)
    assert not torch.equal(dropout(x), first)  # the next call draws a new mask
    assert dropout.eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


def test_fast_dropout_gradient_is_the_mask_times_the_scale():
    dropout = FastDropout(0.2).train()
    x = torch.randn(32, 48, requires_grad=True)
    out = dropout(x)
    out.sum().backward()
    mask = (out != 0).float()
    assert torch.allclose(x.grad, mask * dropout.scale)


def test_every_lora_dropout_is_swapped(tiny_model_dir):
    from tunewise.train.setup import build_lora_model

    spec = tiny_spec(tiny_model_dir, dropout=0.1, target_modules="all-linear")
    model, _ = build_lora_model(spec, "cpu", "fp32")
    swapped = [m for m in model.modules() if isinstance(m, FastDropout)]
    plain = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert swapped and not plain
    reference, _ = build_lora_model(spec, "cpu", "fp32", fast_dropout=False)
    assert len([m for m in reference.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]) == len(swapped)
    assert use_fast_dropout(reference) == len(swapped) and use_fast_dropout(reference) == 0  # idempotent


def _train(tmp_path, tiny_model_dir, monkeypatch, *, optimised: bool, dropout: float):
    """A short run, either as shipped or with both levers off (torch's dropout, the output head everywhere)."""
    if not optimised:
        real_build = loop.build_lora_model
        monkeypatch.setattr(loop, "build_lora_model", lambda *a, **k: real_build(*a, **k, fast_dropout=False))
        monkeypatch.setattr(loop, "label_positions", lambda labels: torch.arange(labels.shape[1] - 1))
    else:
        assert loop.label_positions is steps.label_positions
    project = make_project(tmp_path / ("fast" if optimised else "plain"), n_train=8)
    spec = tiny_spec(
        tiny_model_dir, max_steps=12, eval_examples=0, dropout=dropout, learning_rate=2e-2, lr_schedule="constant"
    )
    result = train(project, spec, run_name="levers", track=False, progress=False)
    monkeypatch.undo()
    from safetensors.torch import load_file

    return [h["loss"] for h in result.history], load_file(str(result.adapter_dir / "adapter_model.safetensors"))


def test_without_dropout_the_levers_give_the_same_losses_and_adapter(tmp_path, tiny_model_dir, monkeypatch):
    fast_losses, fast = _train(tmp_path, tiny_model_dir, monkeypatch, optimised=True, dropout=0.0)
    plain_losses, plain = _train(tmp_path, tiny_model_dir, monkeypatch, optimised=False, dropout=0.0)
    assert fast_losses == pytest.approx(plain_losses, rel=1e-4)
    assert set(fast) == set(plain)
    for name in fast:
        assert torch.allclose(fast[name], plain[name], atol=1e-5), name


def test_with_dropout_the_levers_end_where_the_plain_path_ends(tmp_path, tiny_model_dir, monkeypatch):
    fast_losses, fast = _train(tmp_path, tiny_model_dir, monkeypatch, optimised=True, dropout=0.05)
    plain_losses, plain = _train(tmp_path, tiny_model_dir, monkeypatch, optimised=False, dropout=0.05)
    assert fast_losses[-1] == pytest.approx(plain_losses[-1], rel=0.05)
    flat_fast = torch.cat([fast[name].flatten() for name in sorted(fast)])
    flat_plain = torch.cat([plain[name].flatten() for name in sorted(plain)])
    # other dropout draws on a tiny random model move the adapter measurably (0.92 here), but nowhere near apart
    assert torch.nn.functional.cosine_similarity(flat_fast, flat_plain, dim=0) > 0.85


def test_in_loop_generation_on_a_merged_copy_matches_the_adapter_and_leaves_it_untouched(tiny_model_dir):
    from tunewise.train.evaluate_loop import generate_texts, merged_for_generation
    from tunewise.train.setup import build_lora_model

    model, tokenizer = build_lora_model(tiny_spec(tiny_model_dir, target_modules="all-linear"), "cpu", "fp32")
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)  # a trained adapter: B starts at zero, which would make merging a no-op
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conversations = [[{"role": "user", "content": f"TOTAL {i}.50 RM"}] for i in range(5)]
    unmerged = generate_texts(model, tokenizer, conversations, max_new_tokens=8, batch_size=2)
    with merged_for_generation(model) as merged:
        assert merged is not model and not any("lora" in name for name, _ in merged.named_modules())
        assert generate_texts(merged, tokenizer, conversations, max_new_tokens=8, batch_size=2) == unmerged
    with model.disable_adapter():  # the adapter changes what is generated, so the equality above is a real check
        assert generate_texts(model, tokenizer, conversations, max_new_tokens=8, batch_size=2) != unmerged
    after = model.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
