"""``distill``: label inputs with a teacher, train the student on the labels, compare the two on gold examples.

Reads top to bottom: check the teacher -> inputs -> label (cache, journal, caps) -> filter -> dataset version ->
train the student (and, with ``ceiling``, the same student on gold labels) -> evaluate all on the dev split ->
compare -> report. Every step resumes: labels from the journal and the cache, the version by its hash, training
from its checkpoints, evaluation from the prediction cache.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from tunewise import egress
from tunewise.config import CandidateSpec, ModelSpec, Project, TrainSpec
from tunewise.data import prepare
from tunewise.distill.compare import compare_summary
from tunewise.distill.filters import REASONS, agrees, teacher_target
from tunewise.distill.inputs import InputSet, load_inputs
from tunewise.distill.journal import Journal
from tunewise.distill.label import LabelJob, LabelRun, label_all
from tunewise.distill.record import RESULT_FILE, DistillResult, LabelStats
from tunewise.distill.report import log_distillation, write_distill_report
from tunewise.distill.spend import Prices, SpendLedger
from tunewise.errors import InputError
from tunewise.eval import evaluate
from tunewise.eval.cache import PredictionCache, stable_hash
from tunewise.eval.prompts import PromptContext, get_prompt, prompt_needs_train
from tunewise.examples import load_examples, target_text
from tunewise.io.atomic import atomic_write_text
from tunewise.io.jsonl import write_jsonl
from tunewise.metrics import MetricContext, hosted_price
from tunewise.metrics.stats import mean_ci
from tunewise.models.base import GenerationConfig, close_backend
from tunewise.models.registry import create_backend
from tunewise.records import Completion, Example
from tunewise.report.progress import ProgressDisplay
from tunewise.train import TrainResult, train

STUDENT_MODEL = "distill-student"
CEILING_MODEL = "distill-gold"


@egress.guarded
def distill(
    project: Project,
    *,
    name: str | None = None,
    label_only: bool = False,
    ceiling: bool = False,
    train_spec: TrainSpec | None = None,
    progress: bool = True,
    track: bool = True,
) -> DistillResult:
    """Distil the spec's ``distill.teacher`` into a LoRA student of ``train.base_model``.

    Args:
        project: the loaded spec (its ``distill:`` section says what to label and what may be spent).
        name: the run's name (default: teacher and a digest of the inputs): a rerun of the same name resumes it.
        label_only: stop once the labelled dataset version is written.
        ceiling: also train the student on the inputs' own gold targets (the ceiling distillation can reach).
        train_spec: the student's training settings (default: the spec's ``train:`` section).

    Returns:
        The :class:`DistillResult`, also written as ``result.json`` in ``.tunewise/distill/<name>/``; ``status``
        is ``capped`` when a cap stopped labelling (nothing trained: raise the cap and run again).

    Raises:
        InputError: no teacher, a teacher that is the student, a cap below one call, bad inputs, a hosted teacher
            under ``targets.self_hosted_only`` (before any input is read).
        BackendError: the teacher cannot load, or a local teacher fails.
    """
    spec = project.spec.distill
    train_spec = train_spec or project.spec.train
    teacher = _teacher(project)
    teacher_model = project.spec.model_spec(teacher.model)
    _check_not_student(project, teacher, teacher_model, train_spec, student_adapter=None)
    if teacher_model.backend == "openai" and teacher_model.base_url:
        where = f"models.{teacher.model}.base_url"
        egress.check_endpoint(f"teacher {teacher.name!r}", teacher_model.base_url, file=project.spec_file, field=where)
    inputs = load_inputs(project, hosted_teacher=not teacher_model.self_hosted)
    config = GenerationConfig(
        max_new_tokens=project.spec.eval.max_new_tokens,
        batch_size=project.spec.eval.batch_size,
        json_schema=project.output_schema if teacher.constrained else None,
    )
    jobs = _teacher_jobs(project, teacher, inputs.examples)
    ledger = SpendLedger(
        _prices(teacher_model), max_usd=spec.max_usd, max_tokens=spec.max_tokens, max_new_tokens=config.max_new_tokens
    )
    ledger.check_affordable([job.conversation for job in jobs])
    name = name or f"{teacher.name}-{stable_hash([e.to_dict() for e in inputs.examples])[:8]}"
    student_adapter = project.state_dir / "adapters" / f"distill-{name}"
    _check_not_student(project, teacher, teacher_model, train_spec, student_adapter=student_adapter)
    run_dir = project.state_dir / "distill" / name
    backend = create_backend(teacher.model, teacher_model, project)
    concurrency = spec.concurrency or teacher_model.concurrency
    with ProgressDisplay("distill", enabled=progress) as display:
        task = display.task(f"label with {teacher.name}", len(jobs), rate_unit="ex")
        labelled = label_all(
            backend,
            jobs,
            config,
            journal=Journal(run_dir / "journal.jsonl"),
            cache=PredictionCache(project.state_dir / "cache" / "predictions", backend.identity(), _generation(config)),
            ledger=ledger,
            concurrency=concurrency,
            progress=task.advance,
        )
    close_backend(backend)
    ctx = MetricContext.from_project(project, use_embeddings=False)
    kept, stats = _filter(project, ctx, inputs, labelled, ledger, run_dir)
    labelled_path = run_dir / "labelled.jsonl"
    write_jsonl(labelled_path, [_chat_row(example, target) for example, target in kept])
    base = _result_base(name, run_dir, teacher, project, stats)
    if labelled.cap_message is not None:
        return _finish(base, status="capped")
    if not kept:
        raise InputError(
            f"the teacher gave no usable label for any of {len(jobs)} inputs ({_rejections(stats)}): see "
            f"{run_dir / 'rejected.jsonl'}",
            field="distill.teacher",
        )
    provenance = _provenance(teacher, teacher_model, config, stats, jobs)
    version = prepare(_labelled_project(project, labelled_path), progress=progress, provenance=provenance).version
    base = {**base, "dataset_hash": version.hash}
    if label_only:
        return _finish(base, status="labelled")
    student = _train_once(project, train_spec, version.hash, f"distill-{name}", progress=progress, track=track)
    gold_student = None
    if ceiling:
        gold_student = _train_gold(project, train_spec, inputs, kept, name, progress=progress, track=track)
    candidates, models = _compared(project, teacher, train_spec, student, gold_student)
    eval_dir = run_dir / f"eval-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    summary = evaluate(
        project,
        split="dev",
        limit=spec.dev_examples,
        out=eval_dir,
        candidates=candidates,
        extra_models=models,
        track=track,
        progress=progress,
    )
    comparison = compare_summary(project, summary, eval_dir, teacher.name)
    result = _finish(
        {
            **base,
            "adapter_dir": student.adapter_dir,
            "ceiling_adapter_dir": gold_student.adapter_dir if gold_student else None,
            "eval_run_dir": eval_dir,
            **comparison,
        },
        status="complete",
        track=track,
        project=project,
    )
    return result


def _teacher(project: Project) -> CandidateSpec:
    name = project.spec.distill.teacher
    if name is None:
        raise project.spec_error(
            "no teacher: name one of the spec's candidates (e.g. the best one tunewise eval found)", ("distill",)
        )
    if name in {"student", "student-gold", "base-zero-shot"}:
        raise project.spec_error(
            f"{name!r} names a model of the comparison: rename the candidate", ("distill", "teacher")
        )
    return next(c for c in project.spec.candidates if c.name == name)


def _check_not_student(
    project: Project, teacher: CandidateSpec, model: ModelSpec, train_spec: TrainSpec, *, student_adapter: Path | None
) -> None:
    """The student learns the teacher's answers to its own short prompt: a teacher that *is* that is an error."""
    if model.backend != "local":
        return
    same_base = (model.path or teacher.model) == train_spec.base_model
    if same_base and model.adapter is None and teacher.prompt == "zero_shot" and not teacher.constrained:
        raise project.spec_error(
            f"the teacher {teacher.name!r} is the student: the student's own base ({train_spec.base_model}) with the "
            "student's zero-shot prompt. Teach with a better pipeline (k_shot with similar shots, rag, constrained "
            "decoding) or a larger model",
            ("distill", "teacher"),
        )
    if student_adapter and model.adapter and project.path(model.adapter).resolve() == student_adapter.resolve():
        raise project.spec_error(
            f"the teacher's adapter {model.adapter} is this run's student: a student cannot teach itself",
            ("distill", "teacher"),
        )


def _prices(model: ModelSpec) -> Prices | None:
    if model.price_in_per_1m is not None and model.price_out_per_1m is not None:
        return Prices(model.price_in_per_1m, model.price_out_per_1m)
    if model.backend == "openai":
        listed = hosted_price(model.model or "")
        return Prices(*listed) if listed else None
    return None


def _generation(config: GenerationConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)  # the eval stage's cache key: its predictions and these labels are shared


def _teacher_jobs(project: Project, teacher: CandidateSpec, examples: list[Example]) -> list[LabelJob]:
    """The teacher's conversation for every input. Its shots never include the input itself or an identical twin
    (``k_shot`` excludes them), so distilling the train split's own inputs does not copy their gold labels."""
    train: list[Example] = []
    if prompt_needs_train(teacher.prompt) and project.spec.data.train is not None:
        train = load_examples(project, project.split_path("train"))
    strategy = get_prompt(teacher.prompt)
    context = PromptContext(project, teacher, train)
    return [LabelJob(example.id, strategy(example, context)) for example in examples]


def _filter(
    project: Project,
    ctx: MetricContext,
    inputs: InputSet,
    labelled: LabelRun,
    ledger: SpendLedger,
    run_dir: Path,
) -> tuple[list[tuple[Example, Any]], LabelStats]:
    """Keep the answers that make targets; count and write (``rejected.jsonl``) the others and the failures."""
    spec = project.spec.distill
    kept: list[tuple[Example, Any]] = []
    rejected: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    agreement: list[float] = []
    for example in inputs.examples:
        completion: Completion | None = labelled.completions.get(example.id)
        if completion is None:
            if example.id in labelled.failures:
                rows.append({"id": example.id, "reason": "failed", "detail": labelled.failures[example.id]})
            continue
        target, reason, detail = teacher_target(ctx, completion, drop_refusals=spec.drop_refusals)
        gold = inputs.gold.get(example.id)
        if reason is None and gold is not None:
            agreed = agrees(ctx, target, gold)
            agreement.append(float(agreed))
            if not agreed and spec.drop_disagreeing_gold and not inputs.gold_is_reference:
                reason, detail = "gold_disagrees", f"gold {json.dumps(gold, ensure_ascii=False)[:60]}"
        if reason is not None:
            rejected[reason] = rejected.get(reason, 0) + 1
            rows.append({"id": example.id, "reason": reason, "detail": detail, "output": completion.text})
            continue
        kept.append((example, target))
    write_jsonl(run_dir / "rejected.jsonl", rows)
    stats = LabelStats(
        source=inputs.source,
        curation=inputs.counts,
        pii_masked=inputs.pii_masked,
        inputs=len(inputs.examples),
        labelled=len(kept),
        rejected=dict(sorted(rejected.items())),
        failed=len(labelled.failures),
        pending=len(labelled.pending),
        sent=labelled.sent,
        cached=labelled.cached,
        resumed=labelled.resumed,
        in_doubt_resent=labelled.in_doubt_resent,
        usd=round(ledger.usd, 8),
        tokens=ledger.tokens,
        calls=ledger.calls,
        gold_agreement=mean_ci(np.asarray(agreement), seed=project.spec.eval.seed) if agreement else None,
        wall_s=labelled.wall_s,
    )
    return kept, stats


def _rejections(stats: LabelStats) -> str:
    parts = [f"{REASONS.get(reason, reason)}: {n}" for reason, n in stats.rejected.items()]
    if stats.failed:
        parts.append(f"failed: {stats.failed}")
    return "; ".join(parts) or "none answered"


def _chat_row(example: Example, target: Any) -> dict[str, Any]:
    """A labelled input as a chat row: the student's own short prompt, the teacher's answer as the target."""
    answer = Example(example.id, example.messages, target)
    return {"id": example.id, "messages": [*example.messages, {"role": "assistant", "content": target_text(answer)}]}


def _labelled_project(project: Project, labelled: Path) -> Project:
    """The project with the labelled rows as its train split; dev and test stay the user's gold splits."""
    data = project.spec.data.model_copy(update={"train": str(labelled), "format": "auto"})
    curation = project.spec.curation.model_copy(update={"split": "keep"})
    spec = project.spec.model_copy(update={"data": data, "curation": curation})
    return Project(spec, project.root, project.spec_file, project.lines)


def _provenance(
    teacher: CandidateSpec, model: ModelSpec, config: GenerationConfig, stats: LabelStats, jobs: list[LabelJob]
) -> dict[str, Any]:
    prompt_chars = sum(len(m["content"]) for job in jobs for m in job.conversation) / max(len(jobs), 1)
    return {
        "stage": "distill",
        "teacher": teacher.name,
        "teacher_model": model.model or model.path or teacher.model,
        "teacher_backend": model.backend,
        "teacher_adapter": model.adapter,
        "teacher_prompt": teacher.model_dump(mode="json"),
        "teacher_prompt_chars_mean": round(prompt_chars, 1),
        "max_new_tokens": config.max_new_tokens,
        "constrained": config.json_schema is not None,
        "inputs": stats.source,
        "curation": stats.curation,
        "pii_masked": stats.pii_masked,
        "kept": stats.labelled,
        "rejected": stats.rejected,
        "failed": stats.failed,
        "spend_usd": stats.usd,
        "spend_tokens": stats.tokens,
        "calls": stats.calls,
        "gold_agreement": stats.gold_agreement.to_dict() if stats.gold_agreement else None,
    }


def _train_once(
    project: Project, spec: TrainSpec, dataset: str, run_name: str, *, progress: bool, track: bool
) -> TrainResult:
    """Train, or reuse the adapter a finished run of the same name left on the same data, or resume it."""
    adapter_dir = project.state_dir / "adapters" / run_name
    metadata = adapter_dir / "metadata.json"
    if metadata.is_file():
        published = json.loads(metadata.read_text(encoding="utf-8"))
        same_spec = published.get("train_spec") == spec.model_dump(mode="json")
        if published.get("dataset_hash") == dataset and same_spec:
            saved = Path(published["run_dir"]) / "result.json"
            return TrainResult.from_dict(json.loads(saved.read_text(encoding="utf-8")))
        raise InputError(
            f"adapter {run_name!r} exists but was trained on other data or settings (dataset "
            f"{published.get('dataset_hash')}, not {dataset}{'' if same_spec else '; another train spec'}): "
            "pass another --name",
            file=adapter_dir,
        )
    run_dir = project.state_dir / "runs" / f"train-{run_name}"
    resume = run_dir.is_dir() and any(run_dir.glob("checkpoint-*"))
    return train(project, spec, dataset=dataset, run_name=run_name, resume=resume, progress=progress, track=track)


def _train_gold(
    project: Project,
    spec: TrainSpec,
    inputs: InputSet,
    kept: list[tuple[Example, Any]],
    name: str,
    *,
    progress: bool,
    track: bool,
) -> TrainResult | None:
    """The same student trained on the same inputs' gold targets: how far teacher labels are from the ceiling."""
    rows = [_chat_row(example, inputs.gold[example.id]) for example, _ in kept if example.id in inputs.gold]
    if not rows:
        return None
    path = project.state_dir / "distill" / name / "gold.jsonl"
    write_jsonl(path, rows)
    version = prepare(_labelled_project(project, path), progress=progress, provenance={"stage": "distill-ceiling"})
    return _train_once(project, spec, version.version.hash, f"distill-{name}-gold", progress=progress, track=track)


def _compared(
    project: Project,
    teacher: CandidateSpec,
    spec: TrainSpec,
    student: TrainResult,
    gold_student: TrainResult | None,
) -> tuple[list[CandidateSpec], dict[str, ModelSpec]]:
    """Teacher, student, the student's base with its best prompts, and the gold-trained ceiling, on one split."""
    engine = _student_engine(project, teacher, spec)
    models = {STUDENT_MODEL: ModelSpec(path=spec.base_model, adapter=str(student.adapter_dir), engine=engine)}
    # An extract student is served with the task's schema as a grammar (tunewise serve's default): measured so too.
    grammar = project.spec.task.kind == "extract" and project.output_schema is not None
    candidates = [teacher, CandidateSpec(name="student", model=STUDENT_MODEL, constrained=grammar)]
    reserved = {teacher.name, "student", "student-gold", "base-zero-shot"}  # the names the comparison gives
    base_prompts = [
        c for c in project.spec.candidates if c.name not in reserved and _is_base(project, c.model, spec.base_model)
    ]
    if not any(
        c.prompt == "zero_shot" and not c.constrained
        for c in [teacher, *base_prompts]
        if _is_base(project, c.model, spec.base_model)
    ):
        models["distill-base"] = ModelSpec(path=spec.base_model, engine=engine)
        base_prompts.append(CandidateSpec(name="base-zero-shot", model="distill-base"))
    candidates += base_prompts
    if gold_student is not None:
        models[CEILING_MODEL] = ModelSpec(path=spec.base_model, adapter=str(gold_student.adapter_dir), engine=engine)
        candidates.append(CandidateSpec(name="student-gold", model=CEILING_MODEL, constrained=grammar))
    return candidates, models


def _is_base(project: Project, model: str, base: str) -> bool:
    try:
        spec = project.spec.model_spec(model)
    except KeyError:
        return False
    return spec.backend == "local" and (spec.path or model) == base and spec.adapter is None


def _student_engine(project: Project, teacher: CandidateSpec, spec: TrainSpec) -> str:
    """The engine the student is measured on: the one the spec runs its base on, else the teacher's if local."""
    for candidate in project.spec.candidates:
        if _is_base(project, candidate.model, spec.base_model):
            return project.spec.model_spec(candidate.model).engine
    model = project.spec.model_spec(teacher.model)
    return model.engine if model.backend == "local" else "transformers"


def _result_base(
    name: str, run_dir: Path, teacher: CandidateSpec, project: Project, stats: LabelStats
) -> dict[str, Any]:
    return {
        "name": name,
        "run_dir": run_dir,
        "teacher": teacher.name,
        "metric": project.spec.primary_metric,
        "labels": stats,
    }


def _finish(
    fields: dict[str, Any], *, status: str, track: bool = False, project: Project | None = None
) -> DistillResult:
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result = DistillResult(**fields, status=status, created_at=created)
    run_dir = result.run_dir
    if status == "complete" and project is not None:
        write_distill_report(run_dir, result)
        if track:
            result = dataclasses.replace(result, mlflow_run_id=log_distillation(project, result))
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return result
