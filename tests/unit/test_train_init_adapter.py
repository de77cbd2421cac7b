"""Continued training: ``train.init_adapter`` starts from a saved adapter's weights (a refresh's warm start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.adapters import make_adapter
from tests.support.train_project import tiny_spec
from tunewise.errors import InputError
from tunewise.train.setup import build_lora_model


def test_the_fresh_adapter_takes_the_saved_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    saved_dir = make_adapter(tiny_model_dir, tmp_path / "champion", seed=3, rank=4)
    saved = load_file(str(saved_dir / "adapter_model.safetensors"))
    model, _ = build_lora_model(tiny_spec(tiny_model_dir, init_adapter=str(saved_dir)), "cpu", "fp32")
    loaded = get_peft_model_state_dict(model)
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    fresh, _ = build_lora_model(tiny_spec(tiny_model_dir), "cpu", "fp32")  # without it: B starts at zero
    assert all(not v.any() for k, v in get_peft_model_state_dict(fresh).items() if "lora_B" in k)


def test_an_adapter_of_another_shape_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    saved_dir = make_adapter(tiny_model_dir, tmp_path / "champion", seed=3, rank=4)
    with pytest.raises(InputError, match="rank 4 and alpha 8") as error:
        build_lora_model(tiny_spec(tiny_model_dir, init_adapter=str(saved_dir), rank=8, alpha=16), "cpu", "fp32")
    assert error.value.field == "train.init_adapter"
    only_q = tiny_spec(tiny_model_dir, init_adapter=str(saved_dir), target_modules=["q_proj"])
    with pytest.raises(InputError, match="do not fit"):
        build_lora_model(only_q, "cpu", "fp32")
    with pytest.raises(InputError, match="no LoRA adapter"):
        build_lora_model(tiny_spec(tiny_model_dir, init_adapter=str(tmp_path)), "cpu", "fp32")
