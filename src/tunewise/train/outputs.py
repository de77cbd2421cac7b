"""What a training run leaves on disk: the run directory's files, the best adapter, the published adapter."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunewise.config import TrainSpec
from tunewise.io.atomic import atomic_dir, atomic_write_text
from tunewise.io.outputs import mark_run_dir
from tunewise.records import Record
from tunewise.train.checkpoint import LoopState
from tunewise.train.collate import EncodeReport

BEST = "best"
METADATA = "metadata.json"


@dataclass(frozen=True, kw_only=True)
class TrainResult(Record):
    """The outcome of :func:`tunewise.train.train`."""

    adapter_dir: Path
    run_dir: Path
    best_step: int
    best_metric: float | None
    metric_name: str
    history: list[dict[str, Any]]
    train_tokens: int
    tokens_per_s: float
    wall_time_s: float
    mlflow_run_id: str | None
    dataset_hash: str | None
    base_model: str
    stopped_early: bool = False
    final_step: int = 0
    adapter_fingerprint: str = ""
    """SHA-256 of the final adapter weights on this process (equal on every rank of a data-parallel run)."""
    encode_report: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def write_run_files(
    run_dir: Path, spec: TrainSpec, data: Any, report: EncodeReport, total_steps: int, precision: str, world: int
) -> None:
    """The resolved config and the data report, written once at the start of a run (and again on resume)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    mark_run_dir(run_dir, "train")
    resolved = {
        "train": spec.model_dump(mode="json"),
        "resolved": {"precision": precision, "total_steps": total_steps, "world_size": world},
        "data": {
            "source": data.source,
            "dataset_hash": data.dataset_hash,
            "train_examples": len(data.train),
            "dev_examples": len(data.dev),
        },
    }
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    overlength = {**asdict(report), "summary": report.describe()}
    atomic_write_text(run_dir / "data_report.json", json.dumps(overlength, indent=2))


def write_best(
    run_dir: Path, model: Any, state: LoopState, metric: str, per_example: dict[str, float] | None = None
) -> None:
    """Save the adapter that just set the best task metric as ``<run_dir>/best`` (atomically replacing the old one).

    ``best.json`` holds the step, the metric and, when given, its per-example values (id -> value) on the dev subset.
    """
    with atomic_dir(run_dir / BEST, replace=True) as tmp:
        model.save_pretrained(tmp)
        record = {"step": state.step, "metric": metric, "value": state.best_metric, "per_example": per_example}
        atomic_write_text(tmp / "best.json", json.dumps(record))


def write_adapter(result: TrainResult, model: Any, spec: TrainSpec, *, replace: bool) -> None:
    """Publish the best adapter (the final one when nothing was evaluated) with its metadata, atomically."""
    best = result.run_dir / BEST
    with atomic_dir(result.adapter_dir, replace=replace) as tmp:
        if (best / "adapter_config.json").is_file() and result.best_metric is not None:
            for item in best.iterdir():
                if item.name != "best.json":
                    shutil.copy2(item, tmp / item.name)
        else:
            model.save_pretrained(tmp)
        metadata = {
            "format": 1,
            "base_model": result.base_model,
            "dataset_hash": result.dataset_hash,
            "metric": result.metric_name,
            "best_metric": result.best_metric,
            "best_step": result.best_step,
            "final_step": result.final_step,
            "stopped_early": result.stopped_early,
            "train_tokens": result.train_tokens,
            "tokens_per_s": result.tokens_per_s,
            "wall_time_s": result.wall_time_s,
            "mlflow_run_id": result.mlflow_run_id,
            "run_dir": str(result.run_dir),
            "train_spec": spec.model_dump(mode="json"),
        }
        atomic_write_text(tmp / METADATA, json.dumps(metadata, indent=2))
    history = "".join(json.dumps(entry) + "\n" for entry in result.history)
    atomic_write_text(result.run_dir / "history.jsonl", history)
    atomic_write_text(result.run_dir / "result.json", json.dumps(result.to_dict(), indent=2, default=str))
