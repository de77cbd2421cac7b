"""``evaluate``: every candidate on one split -> predictions, metrics with CIs, paired comparisons, a run directory."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tunewise import egress
from tunewise.config import CandidateSpec, ModelSpec, Project
from tunewise.errors import InputError
from tunewise.eval.cache import stable_hash
from tunewise.eval.generate import generate_cached
from tunewise.eval.prompts import PromptContext, get_prompt, prompt_needs_train
from tunewise.examples import check_targets, load_examples
from tunewise.io.atomic import atomic_write_text, file_sha256
from tunewise.io.jsonl import write_jsonl
from tunewise.io.outputs import atomic_run_dir, check_output_dir, check_output_root
from tunewise.metrics import MetricContext, operational_summary, paired_compare_scores, score_outputs, summarize_scores
from tunewise.models.base import Backend, GenerationConfig
from tunewise.models.registry import create_backend
from tunewise.records import CandidateResult, EvalSummary, Example, PairedComparison, Prediction
from tunewise.report import render_report
from tunewise.report.progress import ProgressDisplay
from tunewise.tracking import log_eval_run

# Per-example metrics compared between every pair of candidates, besides the project's primary metric.
SECONDARY_COMPARISONS = {"extract": ["schema_valid_rate", "exact_match"], "classify": [], "generate": [], "chat": []}


def select_candidates(project: Project, chosen: Sequence[CandidateSpec | str] | None) -> list[CandidateSpec]:
    """The candidates to run: the spec's, or the ones ``chosen`` (a name picks the spec's candidate of that name).

    Raises:
        InputError: a name that is not a candidate of the spec.
    """
    if chosen is None:
        return list(project.spec.candidates)
    known = {c.name: c for c in project.spec.candidates}
    unknown = [c for c in chosen if isinstance(c, str) and c not in known]
    if unknown:
        raise InputError(f"unknown candidate(s) {', '.join(unknown)} (known: {', '.join(known)})", field="--candidate")
    return [known[c] if isinstance(c, str) else c for c in chosen]


@egress.guarded
def evaluate(
    project: Project,
    *,
    split: str = "dev",
    data_path: str | Path | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
    candidates: Sequence[CandidateSpec | str] | None = None,
    extra_models: dict[str, ModelSpec] | None = None,
    backends: dict[str, Backend] | None = None,
    track: bool = True,
    progress: bool = True,
    examples: list[Example] | None = None,
) -> EvalSummary:
    """Evaluate candidates on a split and write a run directory.

    Args:
        project: the loaded spec.
        split: which ``data`` file to use (``train``/``dev``/``test``) unless ``data_path`` or ``examples`` is given.
        data_path: any data file of the same shape as the spec's splits.
        limit: only the first N examples.
        out: the run directory (default ``.tunewise/runs/<run-id>``); written atomically.
        candidates: override the spec's candidates: specs, or names of the spec's candidates; ``extra_models`` adds
            model specs they may refer to.
        backends: ready backends by model name (tests, in-process models); others are built from their specs.
        track: log the run to MLflow.
        examples: evaluate these examples instead of reading a file (the train stage's eval-in-the-loop).

    Returns:
        The :class:`EvalSummary`, also written as ``summary.json`` with ``predictions.jsonl`` beside it.

    Raises:
        InputError: bad data, bad spec, unknown candidate model or prompt strategy.
        BackendError: a model that cannot load or an endpoint that fails.
    """
    if out is not None:  # checked before any work: a bad --out must not cost the whole run
        check_output_dir(out)
    else:
        check_output_root(project.state_dir / "runs")
    candidates = select_candidates(project, candidates)
    if not candidates:
        raise InputError("no candidates to evaluate", file=project.spec_file, field="candidates")
    models = {**project.spec.models, **(extra_models or {})}
    _check_egress(project, models, candidates)
    if examples is None:
        path = Path(data_path) if data_path is not None else project.split_path(split)
        examples = load_examples(project, path, limit=limit)
        data_file, data_hash = str(path), file_sha256(path)
    else:
        examples = examples[:limit] if limit else examples
        data_file, data_hash = "<in-memory>", _examples_hash(examples)
    check_targets(project, examples)  # scoring against a gold answer that breaks the schema is meaningless
    split_name = split if data_path is None else Path(data_file).stem
    train = _train_examples(project, candidates)
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_dir = Path(out) if out is not None else project.state_dir / "runs" / run_id
    context = MetricContext.from_project(project)
    backends = dict(backends or {})
    for candidate in candidates:  # every model is found before any runs
        if candidate.model not in backends:
            model_spec = _model_spec(project, models, candidate)
            backends[candidate.model] = create_backend(candidate.model, model_spec, project)
    cache_dir = project.state_dir / "cache" / "predictions"

    results: list[CandidateResult] = []
    predictions: list[Prediction] = []
    per_example: dict[str, list[dict[str, Any]]] = {}
    with ProgressDisplay("eval", enabled=progress) as display:
        for candidate in candidates:
            model_spec = _model_spec(project, models, candidate)
            backend = backends[candidate.model]
            strategy = get_prompt(candidate.prompt)
            prompt_context = PromptContext(project, candidate, train)
            conversations = [strategy(example, prompt_context) for example in examples]
            config = GenerationConfig(
                max_new_tokens=project.spec.eval.max_new_tokens,
                batch_size=project.spec.eval.batch_size,
                json_schema=project.output_schema if candidate.constrained else None,
            )
            task = display.task(candidate.name, len(examples), rate_unit="ex")
            completions, wall_s, _ = generate_cached(backend, conversations, config, cache_dir, task.advance)
            scored = score_outputs(context, [c.text for c in completions], [e.target for e in examples])
            scores = [s for _, s in scored]
            per_example[candidate.name] = scores
            for example, completion, (parsed, score) in zip(examples, completions, scored, strict=True):
                predictions.append(
                    Prediction(
                        id=example.id,
                        candidate=candidate.name,
                        output=completion.text,
                        parsed=parsed,
                        latency_ms=completion.latency_ms,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                        scores=score,
                    )
                )
            metrics, per_field = summarize_scores(
                context, scores, samples=project.spec.eval.bootstrap_samples, seed=project.spec.eval.seed
            )
            operational = operational_summary(
                [c.latency_ms for c in completions],
                [c.prompt_tokens for c in completions],
                [c.completion_tokens for c in completions],
                wall_s,
                price_in_per_1m=model_spec.price_in_per_1m,
                price_out_per_1m=model_spec.price_out_per_1m,
                gpu_hour_usd=_gpu_hour(project, model_spec),
            )
            # Outputs cut by max_new_tokens score as wrong for a reason the metric does not show.
            operational["truncated_rate"] = sum(c.finish_reason == "length" for c in completions) / len(completions)
            if any(c.tokens_estimated for c in completions):  # the $/1M and tokens/s rest on ~4 characters per token
                operational["tokens_estimated_rate"] = sum(c.tokens_estimated for c in completions) / len(completions)
            results.append(
                CandidateResult(candidate.name, candidate.model, candidate.prompt, metrics, per_field, operational)
            )

    comparisons = _compare_all(project, context, candidates, per_example)
    summary = EvalSummary(
        run_id=run_id,
        task_kind=project.spec.task.kind,
        primary_metric=project.spec.primary_metric,
        split=split_name,
        data_file=data_file,
        data_sha256=data_hash,
        n_examples=len(examples),
        candidates=results,
        comparisons=comparisons,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        egress_guard=egress.is_on(),
    )
    return _write_run(project, run_dir, summary, predictions, examples, candidates, models, track=track)


def _check_egress(project: Project, models: dict[str, ModelSpec], candidates: list[CandidateSpec]) -> None:
    """Under the zero-egress guard, refuse a candidate on a remote endpoint before any other candidate runs."""
    for candidate in candidates:
        spec = _model_spec(project, models, candidate)
        if spec.backend == "openai" and spec.base_url:
            what = f"candidate {candidate.name!r} (model {candidate.model!r})"
            field = f"models.{candidate.model}.base_url"
            egress.check_endpoint(what, spec.base_url, file=project.spec_file, field=field)


def _model_spec(project: Project, models: dict[str, ModelSpec], candidate: CandidateSpec) -> ModelSpec:
    if candidate.model in models:
        return models[candidate.model]
    try:
        return project.spec.model_spec(candidate.model)
    except KeyError:
        raise InputError(
            f"candidate {candidate.name!r} uses unknown model {candidate.model!r}", field="candidates"
        ) from None


def _gpu_hour(project: Project, model_spec: ModelSpec) -> float | None:
    if not model_spec.self_hosted:
        return None
    return model_spec.gpu_hour_usd if model_spec.gpu_hour_usd is not None else project.spec.eval.gpu_hour_usd


def _train_examples(project: Project, candidates: list[CandidateSpec]) -> list[Example]:
    if not any(prompt_needs_train(c.prompt) for c in candidates) or project.spec.data.train is None:
        return []
    return load_examples(project, project.split_path("train"))


def _compare_all(
    project: Project,
    context: MetricContext,
    candidates: list[CandidateSpec],
    per_example: dict[str, list[dict[str, Any]]],
) -> list[PairedComparison]:
    eval_spec = project.spec.eval
    metrics = [project.spec.primary_metric, *SECONDARY_COMPARISONS[project.spec.task.kind]]
    comparisons = []
    for a, b in itertools.combinations([c.name for c in candidates], 2):
        for metric in dict.fromkeys(metrics):
            comparisons.append(
                paired_compare_scores(
                    context,
                    metric,
                    a,
                    b,
                    per_example[a],
                    per_example[b],
                    samples=eval_spec.bootstrap_samples,
                    seed=eval_spec.seed,
                )
            )
    return comparisons


def _write_run(
    project: Project,
    run_dir: Path,
    summary: EvalSummary,
    predictions: list[Prediction],
    examples: list[Example],
    candidates: list[CandidateSpec],
    models: dict[str, ModelSpec],
    *,
    track: bool,
) -> EvalSummary:
    """Write the run directory; with ``track``, log it to MLflow before it is renamed into place, so that a tracking
    failure leaves no run directory behind. Returns the summary with its MLflow run id."""
    resolved = project.spec.model_dump(mode="json")
    resolved["candidates"] = [c.model_dump(mode="json") for c in candidates]
    resolved["models"] = {name: spec.model_dump(mode="json", exclude_none=True) for name, spec in models.items()}
    with atomic_run_dir(run_dir, "eval") as tmp:
        atomic_write_text(tmp / "config.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))
        write_jsonl(tmp / "predictions.jsonl", [p.to_dict() for p in predictions])
        write_jsonl(tmp / "examples.jsonl", [e.to_dict() for e in examples])
        atomic_write_text(tmp / "summary.json", json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
        render_report(tmp)
        if track:
            mlflow_run_id = log_eval_run(project, summary, run_dir, files=tmp)
            summary = EvalSummary(**{**summary.__dict__, "mlflow_run_id": mlflow_run_id})
            atomic_write_text(tmp / "summary.json", json.dumps(summary.to_dict(), indent=2, ensure_ascii=False))
    return summary


def _examples_hash(examples: list[Example]) -> str:
    return stable_hash([e.to_dict() for e in examples])
