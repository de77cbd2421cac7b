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

from tunewise.errors import InputError
from tunewise.spec import Project
from tunewise.train import batching
from tunewise.train.checkpoint import LoopState, compatibility, find_checkpoint, list_checkpoints, load_checkpoint, restore_rng, save_checkpoint
from tunewise.train.collate import encode_examples, pad_batch
from tunewise.train.config import TrainSpec, resolve_precision
from tunewise.train.evaluate_loop import evaluate_in_loop
from tunewise.train.lineage import tracked_run
from tunewise.train.outputs import TrainResult, write_adapter, write_best, write_run_files
from tunewise.train.setup import adapter_fingerprint, build_lora_model, build_optimizer, load_train_data, trainable_state
from tunewise.train.steps import scaled_micro_loss, token_loss_sum, tokens_per_second, total_optimizer_steps

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
            plan = batching.epoch_plan(self.lengths, self.spec.micro_batch_size, seed=self.spec.seed, epoch=epoch, group_by_length=self.spec.group_by_length)
            self._epochs[epoch] = plan[: len(plan) - len(plan) % self.world_size]
        return self._epochs[epoch]

    def step(self, step: int) -> list[list[int]]:
        size = self.spec.gradient_accumulation * self.world_size
        return [self.epoch(p // self.per_epoch)[p % self.per_epoch] for p in range(step * size, (step + 1) * size)]


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
    from peft import set_peft_model_state_dict

    spec = spec or _project_train_spec(project)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, main = accelerator.process_index, accelerator.num_processes, accelerator.is_main_process
    device = "cuda" if accelerator.device.type == "cuda" else "cpu"
    precision = resolve_precision(spec.precision, device)
    checkpoint, run_dir, name = _locate(project, out_dir, run_name, resume)
    adapter_dir = project.state_dir / "adapters" / name
    if checkpoint is None and adapter_dir.exists():
        raise InputError(f"adapter {name!r} already exists; choose another --name or --resume", file=adapter_dir)

    data = load_train_data(project, dataset=dataset, split_train=split_train, split_dev=split_dev, subset=subset, seed=spec.seed)
    model, tokenizer = build_lora_model(spec, device, precision)
    from tunewise.io.examples import target_text

    encoded, report = encode_examples(tokenizer, data.train, [target_text(e) for e in data.train], max_length=spec.max_length, overlength=spec.overlength)
    if len(encoded) < world:
        raise InputError(f"no training example left after the overlength policy ({report.describe()})", field="train.max_length")
    plan = _Plan([len(e.input_ids) for e in encoded], spec, world, {})
    if plan.per_epoch == 0:
        raise InputError(f"{len(encoded)} examples cannot be split across {world} processes", field="train.micro_batch_size")
    total_steps = total_optimizer_steps(plan.per_epoch // world, spec.gradient_accumulation, spec.epochs, spec.max_steps)
    optimizer, scheduler = build_optimizer(model, spec, total_steps)
    compat = compatibility(spec, data.dataset_hash, world)
    state, rng = LoopState(), None
    if checkpoint is not None:
        payload, state = load_checkpoint(checkpoint, compat)
        set_peft_model_state_dict(model, payload["adapter"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        rng = payload["rng"]
    if main:
        write_run_files(run_dir, spec, data, report, total_steps, precision, world)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    autocast = torch.autocast(device_type=device, dtype=torch.bfloat16) if precision == "bf16" and not spec.quantize_4bit else nullcontext()
    eval_set = data.dev[: spec.eval_examples]
    pad_id = tokenizer.pad_token_id
    trainable = [p for p in model.parameters() if p.requires_grad]
    if rng is not None:
        restore_rng(rng)

    with tracked_run(project, name, enabled=track and main, nested=nested, resume_run_id=state.mlflow_run_id) as tracker:
        if state.step == 0:
            tracker.params({**spec.model_dump(), "precision_resolved": precision, "total_steps": total_steps, "train_examples": len(encoded), "world_size": world})
            tracker.tags({"dataset_hash": data.dataset_hash, "dataset_source": data.source, "base_model": spec.base_model, "tunewise.overlength": report.describe()})
        state.mlflow_run_id = tracker.run_id
        bar = _progress_bar(main and progress, total_steps, state.step)
        started = time.perf_counter() - state.elapsed_s
        while state.step < total_steps and not state.stopped_early:
            micro = plan.step(state.step)
            step_targets = sum(encoded[i].target_tokens for batch in micro for i in batch)
            mine = micro[rank::world]
            loss_total = torch.zeros((), device=accelerator.device)
            step_tokens = 0
            for j, indices in enumerate(mine):
                batch = {k: v.to(accelerator.device) for k, v in pad_batch([encoded[i] for i in indices], pad_id).items()}
                sync = nullcontext() if j == len(mine) - 1 else accelerator.no_sync(model)
                with sync:
                    with autocast:
                        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                        loss_sum, _ = token_loss_sum(logits, batch["labels"])
                    accelerator.backward(scaled_micro_loss(loss_sum, step_targets, world))
                loss_total += loss_sum.detach()
                step_tokens += int(batch["attention_mask"].sum())
            if spec.max_grad_norm is not None:
                accelerator.clip_grad_norm_(trainable, spec.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_total = accelerator.reduce(loss_total, "sum") if world > 1 else loss_total
            state.step += 1
            state.train_tokens += step_tokens * world
            state.target_tokens += step_targets
            state.elapsed_s = time.perf_counter() - started
            entry = {"step": state.step, "loss": float(loss_total) / step_targets, "lr": lr, "tokens_per_s": tokens_per_second(state.train_tokens, state.elapsed_s)}
            if state.step % spec.log_every == 0 or state.step == total_steps:
                tracker.metrics({"train/loss": entry["loss"], "train/lr": lr, "train/tokens_per_s": entry["tokens_per_s"]}, state.step)
            if eval_set and (state.step % spec.eval_every == 0 or state.step == total_steps):
                result = evaluate_in_loop(
                    project, accelerator.unwrap_model(model), tokenizer, eval_set, max_new_tokens=spec.eval_max_new_tokens,
                    batch_size=spec.eval_batch_size, autocast=autocast if precision == "bf16" else None, rank=rank, world_size=world,
                )
                entry[f"eval/{result.metric}"] = result.value
                tracker.metrics({f"eval/{result.metric}": result.value}, state.step)
                _update_best(state, result.value, spec)
                if main and state.best_step == state.step:
                    write_best(run_dir, accelerator.unwrap_model(model), state, result.metric)
                if on_eval is not None:
                    state.history.append(entry)
                    on_eval(state.step, result.value)
                    state.history.pop()
            state.history.append(entry)
            if bar is not None:
                bar.update(entry)
            if main and (state.step % spec.checkpoint_every == 0 or state.step == total_steps or state.stopped_early):
                save_checkpoint(run_dir, adapter_state=trainable_state(accelerator.unwrap_model(model)), optimizer=optimizer, scheduler=scheduler, state=state, compat=compat, keep=spec.keep_checkpoints)
            accelerator.wait_for_everyone()
        if bar is not None:
            bar.close()
        unwrapped = accelerator.unwrap_model(model)
        fingerprint = adapter_fingerprint(unwrapped)
        metric_name = project.spec.primary_metric
        result = TrainResult(
            adapter_dir=adapter_dir, run_dir=run_dir, best_step=state.best_step or state.step, best_metric=state.best_metric,
            metric_name=metric_name, history=list(state.history), train_tokens=state.train_tokens,
            tokens_per_s=tokens_per_second(state.train_tokens, state.elapsed_s), wall_time_s=state.elapsed_s,
            mlflow_run_id=tracker.run_id, dataset_hash=data.dataset_hash, base_model=spec.base_model,
            stopped_early=state.stopped_early, final_step=state.step, adapter_fingerprint=fingerprint, encode_report=report.describe(),
        )
        if main:
            write_adapter(result, unwrapped, spec, replace=checkpoint is not None)
            tracker.metrics({"best/" + metric_name: state.best_metric} if state.best_metric is not None else {}, state.step)
            tracker.artifacts(adapter_dir, "adapter")
            tracker.register(f"{project.spec.name}-lora", "adapter", {"base_model": spec.base_model, "dataset": data.dataset_hash})
        accelerator.wait_for_everyone()
    return result


def _update_best(state: LoopState, value: float, spec: TrainSpec) -> None:
    if state.best_metric is None or value > state.best_metric:
        state.best_metric, state.best_step, state.evals_without_improvement = value, state.step, 0
        return
    state.evals_without_improvement += 1
    if spec.early_stopping_patience is not None and state.evals_without_improvement >= spec.early_stopping_patience:
        state.stopped_early = True


def _project_train_spec(project: Project) -> TrainSpec:
    section = getattr(project.spec, "train", None)
    return section if isinstance(section, TrainSpec) else TrainSpec()


def _locate(project: Project, out_dir: Path | None, run_name: str | None, resume: bool | Path) -> tuple[Path | None, Path, str]:
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
        raise InputError("this run directory already holds checkpoints; pass --resume or choose another name", file=run_dir)
    return checkpoint, run_dir, name


class _Bar:
    def __init__(self, total: int, done: int) -> None:
        from rich.progress import Progress

        self._progress = Progress(transient=False)
        self._progress.start()
        self._task = self._progress.add_task("training", total=total, completed=done)

    def update(self, entry: dict[str, Any]) -> None:
        evals = " ".join(f"{k.removeprefix('eval/')}={v:.3f}" for k, v in entry.items() if k.startswith("eval/"))
        text = f"step {entry['step']} loss {entry['loss']:.3f} {entry['tokens_per_s']:.0f} tok/s {evals}"
        self._progress.update(self._task, advance=1, description=text)

    def close(self) -> None:
        self._progress.stop()


def _progress_bar(enabled: bool, total: int, done: int) -> _Bar | None:
    return _Bar(total, done) if enabled else None
