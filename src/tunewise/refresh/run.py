"""``refresh``: train a challenger on newly labelled rows, gate it against the champion, promote it by alias.

Reads top to bottom: lock -> champion (the alias's version, its adapter and dataset) -> new rows -> challenger data
(split, replay, a content-addressed version) -> train (resuming an interrupted run of the same data) -> the
challenger's registered version -> both models on the golden set and the new slice -> two paired tests -> move the
alias when both pass -> the decision record. Rerun after a crash, every step finds what it already did: the version
by its hash, the training run by its name and checkpoints, the predictions in the generation cache.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from tunewise import egress
from tunewise.config import CandidateSpec, ModelSpec, Project, TrainSpec
from tunewise.data.versions import DatasetVersion, load_version
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.eval.cache import stable_hash
from tunewise.eval.predictions import scores_by_candidate
from tunewise.examples import load_examples
from tunewise.label.version import latest_label_version
from tunewise.metrics import MetricContext, example_values, metric_value
from tunewise.refresh import gate
from tunewise.refresh.data import ChallengerData, build_challenger_data, golden_set
from tunewise.refresh.lock import refresh_lock
from tunewise.refresh.promote import move_alias
from tunewise.refresh.record import RefreshDecision, refresh_root
from tunewise.refresh.registry import ModelVersion, champion, register, version_of_run
from tunewise.refresh.report import write_decision
from tunewise.train import TrainResult, train

CHAMPION, CHALLENGER = "champion", "challenger"


@egress.guarded
def refresh(
    project: Project,
    *,
    dataset: str | None = None,
    promote: bool = True,
    progress: bool = True,
    wait: bool = False,
    train_spec: TrainSpec | None = None,
) -> RefreshDecision:
    """Train a challenger on new labelled rows and replace the champion if it passes the gate.

    Args:
        project: the loaded spec; its ``refresh:`` section sets the replay share, the golden set, margin and alpha.
        dataset: the dataset version (hash, prefix, ``latest``) whose train split holds the new labelled rows
            (default: the label stage's latest imported version).
        promote: move the alias when the challenger passes (``False``: decide and record only).
        wait: wait for a refresh already running on this project instead of refusing.
        train_spec: the challenger's training settings (default: the spec's ``train:`` section).

    Returns:
        The :class:`RefreshDecision`, also written to ``.tunewise/refresh/<UTC time>/decision.json`` with a report.

    Raises:
        RefreshBusy: another refresh of the project is running (and ``wait`` is false).
        InputError: no champion, no new rows, fewer than ``refresh.min_new``, a champion whose adapter is not on this
            machine.
    """
    with refresh_lock(project, "refresh", wait=wait):
        return _refresh(project, dataset, promote, progress, train_spec or project.spec.train)


def _refresh(project: Project, dataset: str | None, promote: bool, progress: bool, spec: TrainSpec) -> RefreshDecision:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    current = _champion(project)
    new_version = _new_version(project, dataset)
    if new_version.hash == current.dataset:
        raise InputError(
            f"dataset version {new_version.hash[:12]} is the one the champion was trained on: give the new labels "
            "(--dataset)",
            field="--dataset",
        )
    old = _old_version(project, current)
    old_train = old.read_split("train") if old is not None else load_examples(project, project.split_path("train"))
    golden, golden_ref = golden_set(project, old)
    data = build_challenger_data(
        project,
        new=new_version.read_split("train"),
        new_ref=new_version.hash,
        old_train=old_train,
        old_ref=old.hash if old is not None else "spec data files",
        golden=golden,
        golden_ref=golden_ref,
        extra={"champion_version": current.version, "champion_dataset": current.dataset},
    )
    timings["data"] = time.perf_counter() - started

    mark = time.perf_counter()
    if project.spec.refresh.warm_start:
        spec = _warm_start(spec, current)
    result, resumed = _train_challenger(project, spec, data, progress=progress)
    challenger = _challenger_version(project, result)
    timings["train"] = time.perf_counter() - mark

    mark = time.perf_counter()
    work = refresh_root(project) / "runs" / result.adapter_dir.name
    tests, eval_dirs = _gate(project, current, challenger, data, work, progress=progress)
    timings["eval"] = time.perf_counter() - mark

    passed, reason = gate.verdict(*tests)
    now = dt.datetime.now(dt.UTC)
    decision_id = f"{now:%Y%m%d-%H%M%S-%f}"
    promoted = False
    if passed and promote:
        move_alias(project, challenger, action="promote", reason=reason, decision_id=decision_id)
        promoted = True
    elif passed:
        reason = reason.replace("promoted:", "would be promoted (--no-promote):", 1)
    timings["total"] = time.perf_counter() - started
    decision = RefreshDecision(
        decision_id=decision_id,
        created_at=now.isoformat(timespec="seconds"),
        project=project.spec.name,
        registered_model=project.spec.registered_model,
        alias=project.spec.refresh.alias,
        champion_version=current.version,
        champion_dataset=current.dataset,
        challenger_version=challenger.version,
        challenger_run_id=result.mlflow_run_id,
        challenger_adapter=result.adapter_dir,
        new_dataset=new_version.hash,
        challenger_dataset=data.version.hash,
        sizes=data.sizes,
        metric=project.spec.primary_metric,
        golden=tests[0],
        new_slice=tests[1],
        promoted=promoted,
        reason=reason,
        resumed=resumed,
        timings={k: round(v, 3) for k, v in timings.items()},
        eval_dirs=eval_dirs,
    )
    return write_decision(project, decision, refresh_root(project) / decision_id)


def _warm_start(spec: TrainSpec, current: ModelVersion) -> TrainSpec:
    """The challenger's settings to continue from the champion's adapter: its weights and its LoRA shape."""
    assert current.adapter_dir is not None  # checked by _champion
    config = json.loads((current.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    update: dict[str, Any] = {
        "init_adapter": str(current.adapter_dir),
        "rank": config["r"],
        "alpha": config["lora_alpha"],
    }
    modules = config.get("target_modules")
    if isinstance(modules, list) and modules:
        update["target_modules"] = sorted(modules)
    return spec.model_copy(update=update)


def _champion(project: Project) -> ModelVersion:
    current = champion(project)
    if current is None:
        raise InputError(
            f"no champion: {project.spec.champion} does not exist. Set it once with tunewise refresh promote "
            "--version N (or --adapter NAME)",
            field="refresh.alias",
        )
    directory = current.adapter_dir
    if directory is None or not (directory / "adapter_config.json").is_file():
        raise InputError(
            f"the champion (version {current.version}) has no adapter files on this machine", file=current.source
        )
    return current


def _new_version(project: Project, dataset: str | None) -> DatasetVersion:
    if dataset is not None:
        return load_version(project, dataset)
    latest = latest_label_version(project)
    if latest is None:
        raise InputError(
            "no labelled dataset version yet: import labels with tunewise label, or pass --dataset", field="--dataset"
        )
    return latest


def _old_version(project: Project, current: ModelVersion) -> DatasetVersion | None:
    """The champion's dataset version; ``None`` when it was trained on the spec's files (then those are read)."""
    if current.dataset is None:
        return None
    try:
        return load_version(project, current.dataset)
    except InputError:
        return None


def _train_challenger(
    project: Project, spec: TrainSpec, data: ChallengerData, *, progress: bool
) -> tuple[TrainResult, bool]:
    """Train, or reuse the finished run on the same data and settings, or resume the interrupted one."""
    name = "challenger-" + stable_hash([data.version.hash, spec.model_dump(mode="json")])[:12]
    adapter_dir = project.state_dir / "adapters" / name
    run_dir = project.state_dir / "runs" / f"train-{name}"
    if (adapter_dir / "metadata.json").is_file() and (run_dir / "result.json").is_file():
        saved = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        return TrainResult.from_dict(saved), True
    resume = run_dir.is_dir() and any((run_dir / "checkpoints").glob("step-*"))
    result = train(
        project, spec, dataset=data.version.hash, run_name=name, resume=resume, progress=progress, track=True
    )
    return result, resume


def _challenger_version(project: Project, result: TrainResult) -> ModelVersion:
    """The version training registered; registered here when its run died between publishing and registering."""
    found = version_of_run(project, result.mlflow_run_id) if result.mlflow_run_id else None
    if found is not None:
        return found
    tags = {"base_model": result.base_model, "dataset": result.dataset_hash or ""}
    return register(project, result.adapter_dir, result.mlflow_run_id, tags)


def _gate(
    project: Project,
    current: ModelVersion,
    challenger: ModelVersion,
    data: ChallengerData,
    work: Path,
    *,
    progress: bool,
) -> tuple[tuple[gate.GateTest, gate.GateTest], dict[str, Path]]:
    """Both models on the golden set and on the new slice; the two paired tests."""
    spec, eval_spec = project.spec.refresh, project.spec.eval
    candidates, models = _candidates(project, current, challenger)
    ctx = MetricContext.from_project(project, use_embeddings=False)
    metric = project.spec.primary_metric
    tests = []
    dirs = {}
    for name, examples in (("golden", data.golden), ("new", data.new_eval)):
        out = work / f"eval-{name}"
        evaluate(
            project,
            examples=examples,
            out=out,
            candidates=candidates,
            extra_models=models,
            track=False,
            progress=progress,
        )
        dirs[name] = out
        scores = scores_by_candidate(out)
        a, b = _values(ctx, scores[CHAMPION], metric), _values(ctx, scores[CHALLENGER], metric)
        n = len(examples)
        common = {"metric": metric, "examples": name, "samples": eval_spec.bootstrap_samples, "seed": eval_spec.seed}
        if name == "golden":
            tests.append(gate.non_inferiority(a, b, n, margin=spec.margin, **common))  # type: ignore[arg-type]
        else:
            tests.append(gate.superiority(a, b, n, alpha=spec.alpha, **common))  # type: ignore[arg-type]
    return (tests[0], tests[1]), dirs


def _candidates(
    project: Project, current: ModelVersion, challenger: ModelVersion
) -> tuple[list[CandidateSpec], dict[str, ModelSpec]]:
    """The two adapters as served: the zero-shot prompt they were trained with, the task's schema for ``extract``."""
    engine = _engine(project)
    grammar = project.spec.task.kind == "extract" and project.output_schema is not None
    models, candidates = {}, []
    for name, version in ((CHAMPION, current), (CHALLENGER, challenger)):
        base = version.base_model or project.spec.train.base_model
        models[f"refresh-{name}"] = ModelSpec(path=base, adapter=str(version.adapter_dir), engine=engine)
        candidates.append(CandidateSpec(name=name, model=f"refresh-{name}", constrained=grammar))
    return candidates, models


def _engine(project: Project) -> str:
    """The engine the spec runs its base model on (``transformers`` when no candidate does)."""
    base = project.spec.train.base_model
    for candidate in project.spec.candidates:
        model = project.spec.models.get(candidate.model)
        if model is not None and model.backend == "local" and (model.path or candidate.model) == base:
            return model.engine
    return "transformers"


def _values(ctx: MetricContext, scores: list[dict[str, Any]], metric: str) -> gate.Values:
    """Per-example values of the metric, or the metric itself over resampled examples when it is no mean."""
    values = example_values(ctx, scores, metric)
    if values is not None:
        return values

    def statistic(weights: np.ndarray) -> np.ndarray:
        out = []
        for row in weights:
            resampled = [s for s, k in zip(scores, row.astype(int), strict=True) for _ in range(k)]
            out.append(metric_value(ctx, resampled, metric) or 0.0)
        return np.asarray(out)

    return statistic
