"""LoRA fine-tuning: completion-only SFT with eval-in-the-loop, exact resume and MLflow lineage."""

from tunewise.train.config import TrainSpec
from tunewise.train.loop import train
from tunewise.train.outputs import TrainResult

__all__ = ["TrainResult", "TrainSpec", "train"]
