"""LoRA fine-tuning: completion-only SFT with eval-in-the-loop, exact resume, sweeps and MLflow lineage."""

from tunewise.train.compare import compare_with_baselines
from tunewise.train.loop import train
from tunewise.train.outputs import TrainResult
from tunewise.train.sweep import sweep

__all__ = ["TrainResult", "compare_with_baselines", "sweep", "train"]
