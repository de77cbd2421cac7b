"""Resumable checkpoints: adapter weights, optimizer, scheduler, RNG states and the data position, written atomically.

Layout of ``<run_dir>/checkpoints/step-000050/``: ``state.pt`` (tensors and RNG states) and ``trainer.json`` (the
position, the early-stopping state, and the compatibility fingerprint that a resume must match).
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_dir

CHECKPOINTS = "checkpoints"


@dataclass
class LoopState:
    """Everything about the loop's progress that is not a tensor."""

    step: int = 0
    best_step: int = 0
    best_metric: float | None = None
    evals_without_improvement: int = 0
    train_tokens: int = 0
    target_tokens: int = 0
    elapsed_s: float = 0.0
    step_time_s: float = 0.0
    """Seconds spent in forward/backward/optimizer steps only (evaluation and checkpointing excluded)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    mlflow_run_id: str | None = None


def compatibility(spec: Any, dataset_hash: str, world_size: int) -> dict[str, Any]:
    """What a resumed run must share with the checkpoint for "continues exactly" to hold."""
    return {
        "base_model": spec.base_model,
        "rank": spec.rank,
        "alpha": spec.alpha,
        "target_modules": spec.target_modules,
        "dataset_hash": dataset_hash,
        "max_length": spec.max_length,
        "overlength": spec.overlength,
        "micro_batch_size": spec.micro_batch_size,
        "gradient_accumulation": spec.gradient_accumulation,
        "group_by_length": spec.group_by_length,
        "seed": spec.seed,
        "world_size": world_size,
    }


def rng_states() -> dict[str, Any]:
    import numpy as np
    import torch

    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    run_dir: Path,
    *,
    adapter_state: dict[str, Any],
    optimizer: Any,
    scheduler: Any,
    state: LoopState,
    compat: dict[str, Any],
    keep: int,
) -> Path:
    """Write ``checkpoints/step-NNNNNN`` atomically and prune older ones beyond ``keep``; return its path."""
    import torch

    final = run_dir / CHECKPOINTS / f"step-{state.step:06d}"
    with atomic_dir(final, replace=True) as tmp:
        payload = {
            "adapter": adapter_state,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_states(),
        }
        torch.save(payload, tmp / "state.pt")
        meta = {"format": 1, "loop": asdict(state), "compat": compat}
        (tmp / "trainer.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories of interrupted writes are ignored)."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / "trainer.json").is_file() and (p / "state.pt").is_file())


def find_checkpoint(location: Path) -> Path:
    """A checkpoint directory itself, or the latest checkpoint of a run directory.

    Raises:
        InputError: nothing resumable there.
    """
    if (location / "trainer.json").is_file():
        return location
    found = list_checkpoints(location)
    if not found:
        raise InputError("no checkpoint to resume from", file=location / CHECKPOINTS)
    return found[-1]


def load_checkpoint(path: Path, compat: dict[str, Any]) -> tuple[dict[str, Any], LoopState]:
    """Read a checkpoint after checking it matches this run.

    Returns:
        ``(payload, loop_state)``: payload holds ``adapter``, ``optimizer``, ``scheduler`` and ``rng``.

    Raises:
        InputError: the checkpoint was written by an incompatible run (base model, LoRA shape, data, batching).
    """
    import torch

    meta = json.loads((path / "trainer.json").read_text(encoding="utf-8"))
    saved = meta["compat"]
    diffs = [
        f"{key}: checkpoint has {saved.get(key)!r}, this run has {value!r}"
        for key, value in compat.items()
        if saved.get(key) != value
    ]
    if diffs:
        raise InputError(
            "cannot resume from an incompatible checkpoint (" + "; ".join(diffs) + ")", file=path / "trainer.json"
        )
    payload = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    return payload, LoopState(**meta["loop"])
