"""What a run needs before its first step: the data (with its content hash), the LoRA model, the optimizer."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.config import Project, TrainSpec
from tunewise.data.versions import load_version
from tunewise.errors import BackendError, InputError
from tunewise.examples import load_examples
from tunewise.models.embedded import resolve_model_path
from tunewise.models.loading import load_tokenizer
from tunewise.records import Example
from tunewise.train.steps import lr_factor


@dataclass(frozen=True)
class TrainData:
    train: list[Example]
    dev: list[Example]
    dataset_hash: str
    """The dataset version's hash when training on a whole version, else the SHA-256 of the examples trained on."""
    source: str
    version: str | None = None


def examples_hash(examples: list[Example]) -> str:
    """SHA-256 of the training examples' content (ids, inputs, targets), independent of file names and order of keys."""
    digest = hashlib.sha256()
    for example in examples:
        row = {"id": example.id, "messages": example.messages, "target": example.target}
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def load_train_data(
    project: Project, *, dataset: str | None, split_train: str, split_dev: str, subset: int | None, seed: int
) -> TrainData:
    """Training and dev examples from a dataset version (``dataset``) or the spec's data files.

    ``dataset`` is a dataset version reference (full hash, unique prefix or ``latest``; see
    :func:`tunewise.data.versions.load_version`). ``subset`` keeps the first N training examples after a seeded
    shuffle (the same N for the same seed).

    Raises:
        InputError: missing files or version, bad rows, an empty subset.
    """
    version_hash = None
    if dataset is not None:
        version = load_version(project, dataset)
        train = version.read_split(split_train)
        dev = version.read_split(split_dev) if split_dev in version.splits else []
        source, version_hash = f"dataset:{version.hash}", version.hash
    else:
        train = load_examples(project, project.split_path(split_train))
        dev_value = getattr(project.spec.data, split_dev, None)
        dev = load_examples(project, project.path(dev_value)) if dev_value else []
        source = str(project.split_path(split_train))
    if subset is not None:
        if subset < 1:
            raise InputError(f"subset must be >= 1, got {subset}", field="subset")
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        train = shuffled[:subset]
        version_hash = None  # a subset is not the version: hash what is trained on
    return TrainData(train, dev, version_hash or examples_hash(train), source, version_hash)


def build_lora_model(spec: TrainSpec, device: str, precision: str, *, fast_dropout: bool = True) -> tuple[Any, Any]:
    """Load the base model and wrap it with fresh LoRA adapters (seeded); return ``(peft_model, tokenizer)``.

    ``fast_dropout``: on a CPU, the LoRA dropout draws its masks with :class:`~tunewise.train.dropout.FastDropout`.

    Raises:
        BackendError: the base model cannot be found or loaded; 4-bit requested without CUDA/bitsandbytes.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    directory = resolve_model_path(spec.base_model)
    tokenizer = load_tokenizer(directory)
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if precision == "bf16" else torch.float32}
    if spec.quantize_4bit:
        kwargs["quantization_config"] = _four_bit_config(device)
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, **kwargs)
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot load base model {spec.base_model!r} from {directory}: {exc}") from None
    if spec.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    elif spec.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    torch.manual_seed(spec.seed)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=spec.target_modules if spec.target_modules != "all-linear" else "all-linear",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as exc:
        raise InputError(f"cannot apply LoRA to {spec.base_model!r}: {exc}", field="train.target_modules") from None
    if spec.init_adapter is not None:
        load_initial_adapter(model, Path(spec.init_adapter), spec)
    if fast_dropout and device == "cpu":
        from tunewise.train.dropout import use_fast_dropout

        use_fast_dropout(model)
    if not spec.quantize_4bit:
        model.to(device)
    return model, tokenizer


def load_initial_adapter(model: Any, directory: Path, spec: TrainSpec) -> None:
    """Copy a saved LoRA adapter's weights into ``model``'s fresh adapter (continued training).

    Raises:
        InputError: no adapter there, another rank or alpha, or weights that do not fit this model's adapter.
    """
    from peft import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    config_file, weights_file = directory / "adapter_config.json", directory / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise InputError(
            "no LoRA adapter here (adapter_config.json, adapter_model.safetensors)",
            file=directory,
            field="train.init_adapter",
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if (config.get("r"), config.get("lora_alpha")) != (spec.rank, spec.alpha):
        raise InputError(
            f"the adapter has rank {config.get('r')} and alpha {config.get('lora_alpha')}; train.rank is {spec.rank} "
            f"and train.alpha {spec.alpha}: continued training keeps the adapter's shape",
            file=config_file,
            field="train.init_adapter",
        )
    weights = load_file(str(weights_file))
    expected = set(get_peft_model_state_dict(model))
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise InputError(
            f"the adapter's weights do not fit this model's LoRA layers ({len(missing)} missing, e.g. "
            f"{missing[:1]}; {len(extra)} unexpected, e.g. {extra[:1]}): check train.target_modules",
            file=weights_file,
            field="train.init_adapter",
        )
    set_peft_model_state_dict(model, weights)


def _four_bit_config(device: str) -> Any:
    import torch

    if device != "cuda":
        raise BackendError("quantize_4bit (QLoRA) needs a CUDA GPU; set train.quantize_4bit: false on this machine")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise BackendError("quantize_4bit needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16,
    )


def build_optimizer(model: Any, spec: TrainSpec, total_steps: int) -> tuple[Any, Any]:
    """AdamW over the trainable (LoRA) parameters only, and its warmup + decay schedule."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    warmup = round(spec.warmup_ratio * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup, spec.lr_schedule)
    )
    return optimizer, scheduler


def trainable_state(model: Any) -> dict[str, Any]:
    """A CPU copy of the adapter weights (what a checkpoint stores)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(model).items()}


def adapter_fingerprint(model: Any) -> str:
    """SHA-256 of the adapter weights' bytes: equal on every process of a data-parallel run."""
    digest = hashlib.sha256()
    for name, tensor in sorted(trainable_state(model).items()):
        digest.update(name.encode())
        digest.update(tensor.float().numpy().tobytes())
    return digest.hexdigest()
