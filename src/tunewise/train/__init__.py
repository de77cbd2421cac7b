"""LoRA fine-tuning: completion-only SFT with eval-in-the-loop, exact resume and MLflow lineage.

``TrainSpec`` is importable without torch or the rest of tunewise (``tunewise.spec`` embeds it as the ``train:``
section); the loop and its result type load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunewise.train.config import TrainSpec

if TYPE_CHECKING:
    from tunewise.train.loop import train
    from tunewise.train.outputs import TrainResult

__all__ = ["TrainResult", "TrainSpec", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from tunewise.train.loop import train

        return train
    if name == "TrainResult":
        from tunewise.train.outputs import TrainResult

        return TrainResult
    raise AttributeError(f"module 'tunewise.train' has no attribute {name!r}")
