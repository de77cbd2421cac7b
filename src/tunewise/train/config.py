"""The ``train:`` section of ``tunewise.yaml``: one frozen config for a LoRA SFT run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunewise.errors import InputError

# Not imported from tunewise.spec: the spec embeds TrainSpec as its ``train:`` section, so this module must not import it.
EMBEDDED_MODEL = "smollm2-135m"


class TrainSpec(BaseModel):
    """LoRA supervised fine-tuning settings. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str = EMBEDDED_MODEL
    """An embedded model name (``smollm2-135m``) or a local HF model directory."""
    rank: int = Field(16, ge=1)
    """LoRA rank ``r``."""
    alpha: int = Field(32, ge=1)
    """LoRA scaling numerator (the update is scaled by ``alpha / rank``)."""
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt (e.g. ``[q_proj, v_proj]``), or every linear layer but the output head."""
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


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` where bf16 matmuls are native (CUDA with bf16, CPUs with AVX512-BF16/AMX), else ``fp32``."""
    import torch

    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return "bf16" if check is not None and check() else "fp32"
    except RuntimeError:
        return "fp32"


def project_train_spec(project: Any) -> TrainSpec:
    """The project's ``train:`` section, or the defaults when the spec has none."""
    section = getattr(project.spec, "train", None)
    return section if isinstance(section, TrainSpec) else TrainSpec()


def load_train_spec(path: str | Path) -> TrainSpec:
    """Read a YAML file holding ``TrainSpec`` fields (either at the top level or under ``train:``).

    Raises:
        InputError: missing file, malformed YAML, an unknown key or a bad value (named with its line).
    """
    from pydantic import ValidationError

    from tunewise.io.yamlfile import line_of, read_yaml_mapping

    path = Path(path)
    raw, lines = read_yaml_mapping(path, what="training config")
    prefix: tuple[str, ...] = ()
    if isinstance(raw, dict) and set(raw) == {"train"}:
        raw, prefix = raw["train"] or {}, ("train",)
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of training settings", file=path)
    try:
        return TrainSpec.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(p) for p in error["loc"])
        problem = f"unknown key (expected one of: {', '.join(TrainSpec.model_fields)})" if error["type"] == "extra_forbidden" else error["msg"]
        raise InputError(problem, file=path, line=line_of(lines, (*prefix, *loc[:1])), field=".".join((*prefix, *loc))) from None
