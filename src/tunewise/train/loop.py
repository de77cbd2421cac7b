"""The training loop: LoRA SFT with completion-only loss, eval-in-the-loop, checkpoints, exact resume.

Reads top to bottom: data -> model -> (resume) -> steps (accumulate, clip, step, log, evaluate, checkpoint) ->
adapter + lineage. Runs unchanged under ``accelerate launch`` / ``torchrun``: every process builds the same
deterministic batch plan and takes its share; only the main process writes files and logs to MLflow.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise import egress
from tunewise.config import Project, TrainSpec
from tunewise.errors import InputError
from tunewise.examples import spread_order, target_text
from tunewise.io.outputs import check_output_dir, check_output_root
from tunewise.report.progress import ProgressDisplay
from tunewise.tracking import ensure_experiment
from tunewise.train import batching
from tunewise.train.checkpoint import (
    LoopState,
    compatibility,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from tunewise.train.collate import encode_examples, pad_batch
from tunewise.train.evaluate_loop import evaluate_in_loop
from tunewise.train.lineage import tracked_run
from tunewise.train.outputs import TrainResult, write_adapter, write_best, write_run_files
from tunewise.train.precision import resolve_precision
from tunewise.train.setup import (
    adapter_fingerprint,
    build_lora_model,
    build_optimizer,
    load_train_data,
    trainable_state,
)
from tunewise.train.steps import (
    kept_loss_sum,
    label_positions,
    scaled_micro_loss,
    tokens_per_second,
    total_optimizer_steps,
)

EvalCallback = Callable[[int, float], None]


@dataclass
class _Plan:
    """The global micro-batch sequence (all epochs), consumed ``gradient_accumulation * world_size`` per step."""

    lengths: list[int]
    spec: TrainSpec
    world_size: int
    _epochs: dict[int, list[list[int]]]

    @property
    def per_epoch(self) -> int:
        return len(self.epoch(0))

    def epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            plan = batching.epoch_plan(
                self.lengths,
                self.spec.micro_batch_size,
                seed=self.spec.seed,
                epoch=epoch,
                group_by_length=self.spec.group_by_length,
            )
            self._epochs[epoch] = plan[: len(plan) - len(plan) % self.world_size]
        return self._epochs[epoch]

    def step(self, step: int) -> list[list[int]]:
        size = self.spec.gradient_accumulation * self.world_size
        return [self.epoch(p // self.per_epoch)[p % self.per_epoch] for p in range(step * size, (step + 1) * size)]


@egress.guarded
def train(
    project: Project,
    spec: TrainSpec | None = None,
    *,
    dataset: str | None = None,
    split_train: str = "train",
    split_dev: str = "dev",
    out_dir: Path | None = None,
    resume: bool | Path = False,
    subset: int | None = None,
    run_name: str | None = None,
    track: bool = True,
    nested: bool = False,
    on_eval: EvalCallback | None = None,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune LoRA adapters on the project's training data and write ``.tunewise/adapters/<name>/``.

    Args:
        project: the loaded spec; ``spec`` defaults to its ``train`` section.
        dataset: a dataset version reference (else the spec's data files).
        out_dir: the run directory (default ``.tunewise/runs/train-<name>``).
        resume: ``True`` continues the run named by ``run_name``/``out_dir`` from its latest checkpoint; a path
            names a run directory or a checkpoint.
        subset: train on the first N examples of a seeded shuffle.
        run_name: names the run, the adapter directory and the MLflow run.
        on_eval: called as ``on_eval(step, metric_value)`` after each evaluation; may raise to stop (pruning).

    Returns:
        The :class:`TrainResult` (also in ``<adapter_dir>/metadata.json``).

    Raises:
        InputError: bad data, no example fits ``max_length``, an incompatible checkpoint, an existing adapter name.
        BackendError: the base model cannot be found or loaded.
    """
    import torch
    from accelerate import Accelerator

    spec = spec or project.spec.train
    if spec.init_adapter is not None:  # a path in the spec is relative to the spec's folder, like every other
        spec = spec.model_copy(update={"init_adapter": str(project.path(spec.init_adapter))})
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    world, main = accelerator.num_processes, accelerator.is_main_process
    if accelerator.distributed_type.value == "DEEPSPEED" and spec.gradient_accumulation > 1:
        # DeepSpeed accumulates and rescales inside accelerator.backward: with ours on top, the gradient would be off.
        raise InputError(
            "under DeepSpeed set train.gradient_accumulation: 1 (raise micro_batch_size instead)",
            field="train.gradient_accumulation",
        )
    checkpoint, run_dir, name = _locate(project, out_dir, run_name, resume)
    adapter_dir = project.state_dir / "adapters" / name
    if checkpoint is None and adapter_dir.exists():
        raise InputError(f"adapter {name!r} already exists; choose another --name or --resume", file=adapter_dir)
    if checkpoint is None:  # a new run: where it writes is checked before the model loads
        check_output_dir(run_dir)
        check_output_root(adapter_dir.parent)
    if track and main:
        ensure_experiment(project)  # a tracking store that cannot open fails here, before the run directory exists

    data = load_train_data(
        project, dataset=dataset, split_train=split_train, split_dev=split_dev, subset=subset, seed=spec.seed
    )
    run, state, report, total_steps = _prepare(project, spec, accelerator, data, checkpoint, run_dir)
    model, optimizer, precision, compat = run.model, run.optimizer, run.precision, run.compat
    with tracked_run(
        project, name, enabled=track and main, nested=nested, resume_run_id=state.mlflow_run_id
    ) as tracker:
        if state.mlflow_run_id is None:  # a new MLflow run (not reopened on resume)
            resolved = {
                "precision_resolved": precision,
                "total_steps": total_steps,
                "train_examples": len(run.encoded),
                "world_size": world,
            }
            tracker.params({**spec.model_dump(), **resolved})
            tracker.tags(
                {
                    "dataset_hash": data.dataset_hash,
                    "dataset_source": data.source,
                    "base_model": spec.base_model,
                    "tunewise.overlength": report.describe(),
                }
            )
            if data.version is not None:
                tracker.dataset_version(project, data.version, split_train)
        state.mlflow_run_id = tracker.run_id
        display = ProgressDisplay("train", enabled=main and progress).start()
        steps = display.task("step", total_steps, done=state.step)
        started = time.perf_counter() - state.elapsed_s
        while state.step < total_steps and not state.stopped_early:
            entry = _optimizer_step(run, state)
            state.elapsed_s = time.perf_counter() - started
            if state.step % spec.log_every == 0 or state.step == total_steps:
                tracker.metrics(
                    {"train/loss": entry["loss"], "train/lr": entry["lr"], "train/tokens_per_s": entry["tokens_per_s"]},
                    state.step,
                )
            if run.eval_set and (state.step % spec.eval_every == 0 or state.step == total_steps):
                _evaluate(run, state, entry, tracker, on_eval)
            state.history.append(entry)
            steps.advance(1, _step_stats(entry))
            if main and (state.step % spec.checkpoint_every == 0 or state.step == total_steps or state.stopped_early):
                unwrapped = accelerator.unwrap_model(model)
                save_checkpoint(
                    run_dir,
                    adapter_state=trainable_state(unwrapped),
                    optimizer=optimizer,
                    scheduler=run.scheduler,
                    state=state,
                    compat=compat,
                    keep=spec.keep_checkpoints,
                )
            accelerator.wait_for_everyone()
        display.close()
        unwrapped = accelerator.unwrap_model(model)
        result = TrainResult(
            adapter_dir=adapter_dir,
            run_dir=run_dir,
            best_step=state.best_step or state.step,
            best_metric=state.best_metric,
            metric_name=project.spec.primary_metric,
            history=list(state.history),
            train_tokens=state.train_tokens,
            tokens_per_s=tokens_per_second(state.train_tokens, state.step_time_s),
            wall_time_s=state.elapsed_s,
            mlflow_run_id=tracker.run_id,
            dataset_hash=data.dataset_hash,
            base_model=spec.base_model,
            stopped_early=state.stopped_early,
            final_step=state.step,
            adapter_fingerprint=adapter_fingerprint(unwrapped),
            encode_report=report.describe(),
        )
        if main:
            write_adapter(result, unwrapped, spec, replace=checkpoint is not None)
            if state.best_metric is not None:
                tracker.metrics({"best/" + result.metric_name: state.best_metric}, state.step)
            tracker.artifacts(adapter_dir, "adapter")
            tracker.register(
                project.spec.registered_model, "adapter", {"base_model": spec.base_model, "dataset": data.dataset_hash}
            )
        accelerator.wait_for_everyone()
    return result


@dataclass
class _TrainingRun:
    """The fixed parts of a run that the step and evaluation helpers share."""

    project: Project
    spec: TrainSpec
    accelerator: Any
    model: Any
    tokenizer: Any
    optimizer: Any
    scheduler: Any
    encoded: list[Any]
    plan: _Plan
    autocast: Any
    precision: str
    run_dir: Path
    compat: dict[str, Any]
    eval_set: list[Any]


def _prepare(
    project: Project, spec: TrainSpec, accelerator: Any, data: Any, checkpoint: Path | None, run_dir: Path
) -> tuple[_TrainingRun, LoopState, Any, int]:
    """Model, encoded data, batch plan, optimizer and schedule; the checkpoint's state restored when resuming."""
    import torch
    from peft import set_peft_model_state_dict

    world = accelerator.num_processes
    device = "cuda" if accelerator.device.type == "cuda" else "cpu"
    precision = resolve_precision(spec.precision, device)
    model, tokenizer = build_lora_model(spec, device, precision)
    answers = [target_text(e) for e in data.train]
    encoded, report = encode_examples(
        tokenizer, data.train, answers, max_length=spec.max_length, overlength=spec.overlength
    )
    if len(encoded) < world:
        raise InputError(
            f"no training example left after the overlength policy ({report.describe()})", field="train.max_length"
        )
    plan = _Plan([len(e.input_ids) for e in encoded], spec, world, {})
    if plan.per_epoch == 0:
        raise InputError(
            f"{len(encoded)} examples cannot be split across {world} processes", field="train.micro_batch_size"
        )
    total_steps = total_optimizer_steps(
        plan.per_epoch // world, spec.gradient_accumulation, spec.epochs, spec.max_steps
    )
    optimizer, scheduler = build_optimizer(model, spec, total_steps)
    compat = compatibility(spec, data.dataset_hash, world)
    state, rng = LoopState(), None
    if checkpoint is not None:
        payload, state = load_checkpoint(checkpoint, compat)
        set_peft_model_state_dict(model, payload["adapter"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        rng = payload["rng"]
    if accelerator.is_main_process:
        write_run_files(run_dir, spec, data, report, total_steps, precision, world)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    autocast = (
        torch.autocast(device_type=device, dtype=torch.bfloat16)
        if precision == "bf16" and not spec.quantize_4bit
        else nullcontext()
    )
    if rng is not None:
        restore_rng(rng)  # last: nothing after this may consume random numbers before the first step
    eval_set = spread_order(data.dev, spec.seed)[: spec.eval_examples]  # a sample, even of a dev file sorted by label
    run = _TrainingRun(
        project,
        spec,
        accelerator,
        model,
        tokenizer,
        optimizer,
        scheduler,
        encoded,
        plan,
        autocast,
        precision,
        run_dir,
        compat,
        eval_set,
    )
    return run, state, report, total_steps


def _optimizer_step(run: _TrainingRun, state: LoopState) -> dict[str, Any]:
    """Accumulate this process's micro-batches of the step, clip, step; return the step's log entry."""
    import torch

    accelerator, spec, model = run.accelerator, run.spec, run.model
    rank, world = accelerator.process_index, accelerator.num_processes
    step_started = time.perf_counter()
    micro = run.plan.step(state.step)
    step_targets = sum(run.encoded[i].target_tokens for batch in micro for i in batch)
    mine = micro[rank::world]
    loss_total = torch.zeros((), device=accelerator.device)
    step_tokens = 0
    for j, indices in enumerate(mine):
        batch = {
            k: v.to(accelerator.device)
            for k, v in pad_batch([run.encoded[i] for i in indices], run.tokenizer.pad_token_id).items()
        }
        # gradients are all-reduced once per optimizer step, on its last micro-batch
        with nullcontext() if j == len(mine) - 1 else accelerator.no_sync(model):
            with run.autocast:
                positions = label_positions(batch["labels"])
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=positions
                ).logits
                loss_sum, _ = kept_loss_sum(logits, batch["labels"], positions)
            accelerator.backward(scaled_micro_loss(loss_sum, step_targets, world))
        loss_total += loss_sum.detach()
        step_tokens += int(batch["attention_mask"].sum())
    if spec.max_grad_norm is not None:
        accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], spec.max_grad_norm)
    lr = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    if world > 1:
        loss_total = accelerator.reduce(loss_total, "sum")
    state.step += 1
    state.train_tokens += step_tokens * world
    state.target_tokens += step_targets
    loss_value = float(loss_total) / step_targets
    state.step_time_s += time.perf_counter() - step_started
    return {
        "step": state.step,
        "loss": loss_value,
        "lr": lr,
        "tokens_per_s": tokens_per_second(state.train_tokens, state.step_time_s),
    }


def _evaluate(
    run: _TrainingRun, state: LoopState, entry: dict[str, Any], tracker: Any, on_eval: EvalCallback | None
) -> None:
    """Score the dev subset, keep the best adapter, update early stopping, call ``on_eval``."""
    accelerator, spec = run.accelerator, run.spec
    unwrapped = accelerator.unwrap_model(run.model)
    result = evaluate_in_loop(
        run.project,
        unwrapped,
        run.tokenizer,
        run.eval_set,
        max_new_tokens=spec.eval_max_new_tokens,
        batch_size=spec.eval_batch_size,
        autocast=run.autocast if run.precision == "bf16" else None,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )
    entry[f"eval/{result.metric}"] = result.value
    tracker.metrics({f"eval/{result.metric}": result.value}, state.step)
    _update_best(state, result.value, spec)
    if accelerator.is_main_process and state.best_step == state.step:
        write_best(run.run_dir, unwrapped, state, result.metric, result.per_example)
    if on_eval is not None:
        on_eval(state.step, result.value)


def _update_best(state: LoopState, value: float, spec: TrainSpec) -> None:
    if state.best_metric is None or value > state.best_metric:
        state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
        return
    state.evals_without_improvement += 1
    if spec.early_stopping_patience is not None and state.evals_without_improvement >= spec.early_stopping_patience:
        state.stopped_early = True


def _locate(
    project: Project, out_dir: Path | None, run_name: str | None, resume: bool | Path
) -> tuple[Path | None, Path, str]:
    """``(checkpoint to resume or None, run directory, run name)``."""
    if isinstance(resume, Path | str) and not isinstance(resume, bool):
        checkpoint = find_checkpoint(Path(resume))
        run_dir = checkpoint.parent.parent
        return checkpoint, run_dir, run_name or run_dir.name.removeprefix("train-")
    name = run_name or (out_dir.name if out_dir is not None else None)
    if name is None and resume:
        runs = sorted((project.state_dir / "runs").glob("train-*"), key=lambda p: p.stat().st_mtime)
        runs = [r for r in runs if list_checkpoints(r)]
        if not runs:
            raise InputError("no training run with a checkpoint to resume", file=project.state_dir / "runs")
        return find_checkpoint(runs[-1]), runs[-1], runs[-1].name.removeprefix("train-")
    name = name or f"{project.spec.name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    run_dir = out_dir if out_dir is not None else project.state_dir / "runs" / f"train-{name}"
    checkpoint = find_checkpoint(run_dir) if resume else None
    if checkpoint is None and list_checkpoints(run_dir):
        raise InputError(
            "this run directory already holds checkpoints; pass --resume or choose another name", file=run_dir
        )
    return checkpoint, run_dir, name


def _step_stats(entry: dict[str, Any]) -> dict[str, float]:
    """What a progress line shows of a step: loss, learning rate, throughput, and the latest evaluation."""
    evals = {k: v for k, v in entry.items() if k.startswith("eval/")}
    return {"loss": entry["loss"], "lr": entry["lr"], "tok/s": round(entry["tokens_per_s"]), **evals}
