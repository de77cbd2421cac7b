"""Real PEFT LoRA adapters on disk without training: random non-zero B matrices, so they really change outputs."""

from __future__ import annotations

import json
from pathlib import Path


def make_adapter(model_dir: Path, out: Path, *, seed: int = 0, base_model: str | None = None, rank: int = 4) -> Path:
    """A LoRA adapter (all linear layers) on the model in ``model_dir``, saved to ``out`` with tunewise's metadata.

    Args:
        base_model: the base name recorded in ``metadata.json`` (default: ``model_dir``), e.g. ``smollm2-135m``.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    peft_model.save_pretrained(out)
    (out / "metadata.json").write_text(json.dumps({"base_model": base_model or str(model_dir)}))
    return out
