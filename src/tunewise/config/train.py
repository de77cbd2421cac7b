"""The ``train:`` section of ``tunewise.yaml``: one frozen config for a LoRA SFT run."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tunewise.config.base import Strict
from tunewise.config.tasks import EMBEDDED_MODEL
from tunewise.config.validation import validate_section
from tunewise.errors import InputError
from tunewise.io.yamlfile import read_yaml_mapping


class TrainSpec(Strict):
    """LoRA supervised fine-tuning settings. Unknown keys are errors."""

    base_model: str = EMBEDDED_MODEL
    """An embedded model name (``smollm2-135m``) or a local HF model directory."""
    rank: int = Field(16, ge=1)
    """LoRA rank ``r``."""
    alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (the update is scaled by ``alpha / rank``)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt (e.g. ``[q_proj, v_proj]``), or every linear layer but the output head."""
    init_adapter: str | None = None
    """Start from this PEFT LoRA adapter's weights instead of fresh ones (Axolotl's ``lora_model_dir``): continued
    training, e.g. a refresh's challenger starting from the champion. Its rank must be ``rank``."""
    learning_rate: float = Field(2e-4, gt=0)
    lr_schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the global gradient norm of the adapter parameters; ``null`` disables clipping."""
    epochs: float = Field(1, gt=0)
    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps; overrides ``epochs`` when set."""
    micro_batch_size: int = Field(4, ge=1)
    gradient_accumulation: int = Field(4, ge=1)
    max_length: int = Field(1024, ge=8)
    """Tokens per training sequence (prompt + answer)."""
    overlength: Literal["truncate", "drop"] = "drop"
    """What to do with a sequence longer than ``max_length``; both are reported."""
    group_by_length: bool = True
    """Batch examples of similar length together so little compute is spent on padding."""
    gradient_checkpointing: bool = False
    eval_every: int = Field(50, ge=1)
    """Optimizer steps between evaluations on the dev subset (and at the end of training)."""
    eval_examples: int = Field(32, ge=0)
    """Dev examples generated and scored with the task metric at each evaluation; 0 disables it."""
    eval_max_new_tokens: int = Field(256, ge=1)
    eval_batch_size: int = Field(8, ge=1)
    early_stopping_patience: int | None = Field(3, ge=1)
    """Stop after this many evaluations without improvement of the task metric; ``null`` never stops early."""
    checkpoint_every: int = Field(50, ge=1)
    """Optimizer steps between resumable checkpoints."""
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bf16 autocast where the hardware supports it (faster on recent CPUs and GPUs), else fp32."""
    quantize_4bit: bool = False
    """QLoRA: load the base model in 4-bit with bitsandbytes (CUDA only)."""
    log_every: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TrainSpec:
        if isinstance(self.target_modules, list) and not self.target_modules:
            raise ValueError("target_modules must name at least one module, or be 'all-linear'")
        return self

    @property
    def tokens_per_step_hint(self) -> int:
        return self.micro_batch_size * self.gradient_accumulation * self.max_length


def load_train_spec(path: str | Path) -> TrainSpec:
    """Read a YAML file holding ``TrainSpec`` fields (either at the top level or under ``train:``).

    Raises:
        InputError: missing file, malformed YAML, an unknown key or a bad value (named with its line).
    """
    path = Path(path)
    raw, lines = read_yaml_mapping(path, what="training config")
    prefix: tuple[str, ...] = ()
    if set(raw) == {"train"}:
        raw, prefix = raw["train"] or {}, ("train",)
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of training settings", file=path)
    return validate_section(TrainSpec, raw, path=path, lines=lines, prefix=prefix)
