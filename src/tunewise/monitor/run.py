"""``monitor``: a window of production traffic against the champion's reference data.

Reads top to bottom: traffic of the watched model's current version -> the reference (the champion's dataset
version) -> embeddings of both -> the output reference (the watched model's answers to reference dev inputs, through
the eval cache; else the dev set's gold) -> signals of the whole window and of each bucket, judged -> the examples
that drive the drift -> ``report.{json,md,html}`` in ``.tunewise/monitor/<UTC time>/`` -> MLflow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from tunewise import egress
from tunewise.config import CandidateSpec, ModelSpec, Project, duration_seconds
from tunewise.embeddings import embed_texts
from tunewise.eval import evaluate
from tunewise.io.atomic import atomic_write_text
from tunewise.io.outputs import atomic_run_dir, check_output_root
from tunewise.metrics import MetricContext
from tunewise.monitor.outputs import OutputReference
from tunewise.monitor.quality import quality_signal
from tunewise.monitor.record import REPORT_FILE, BucketResult, DriftExample, DriftReport
from tunewise.monitor.reference import Reference, load_reference
from tunewise.monitor.report import log_monitor, write_monitor_report
from tunewise.monitor.signals import EmbeddingDrift, ReferenceSide, window_signals
from tunewise.monitor.stats import pca_2d
from tunewise.monitor.traffic import TrafficRow, input_text, load_traffic
from tunewise.monitor.verdict import worst
from tunewise.monitor.windows import bucket_edges, split_rows
from tunewise.tracking import local_artifact_path, registered_aliases

WATCHED = "monitor-watched"
"""The model name the watched adapter is evaluated under (on reference dev inputs)."""


@egress.guarded
def monitor(
    project: Project,
    *,
    since: float | None = None,
    until: float | None = None,
    source: str | Path | None = None,
    model: str | None = None,
    labelled: dict[str, Any] | None = None,
    reference_outputs: list[str] | None = None,
    progress: bool = True,
    track: bool = True,
) -> DriftReport:
    """Compare the traffic of ``since <= created < until`` with the champion's reference data.

    Args:
        project: the loaded spec (its ``monitor:`` section holds the thresholds).
        since, until: the window (unix times; default: all the traffic of the watched version).
        source: a request log or a JSONL of inputs (default ``monitor.traffic``, else the project's request log).
        model: the served name watched (default ``monitor.model``, else the champion alias).
        labelled: request id -> gold target for the window's labelled requests (the label stage's output): scored
            with the task metric against the champion's dev figure.
        reference_outputs: the watched model's answers to reference inputs, if the caller has them (default: the
            model answers up to ``monitor.reference_outputs`` reference dev examples, through the eval cache).
        track: log the run to MLflow.

    Returns:
        The :class:`DriftReport`, also written with its Markdown and HTML report in ``.tunewise/monitor/<UTC time>/``.

    Raises:
        InputError: no traffic source, a malformed traffic row, no reference data, an unwritable state directory.
        BackendError: the watched model cannot be loaded to answer the reference inputs.
    """
    spec = project.spec.monitor
    check_output_root(project.state_dir / "monitor")
    started = dt.datetime.now(dt.UTC)
    run_dir = project.state_dir / "monitor" / f"{started:%Y%m%dT%H%M%S-%fZ}"
    traffic = load_traffic(project, source=source, model=model, since=since, until=until)
    reference = load_reference(project, seed=spec.seed)
    rows = traffic.rows
    start = since if since is not None else (rows[0].created if rows else started.timestamp())
    end = until if until is not None else (rows[-1].created if rows else started.timestamp())
    edges = bucket_edges(start, end, duration_seconds(spec.window))
    base: dict[str, Any] = {
        "run_dir": run_dir,
        "model": traffic.model,
        "model_version": traffic.model_version,
        "traffic_source": traffic.source,
        "reference_source": reference.source,
        "reference_dataset": reference.dataset_hash,
        "since": start,
        "until": end,
        "bucket": spec.window,
        "n_window": len(rows),
        "n_reference": len(reference.examples),
        "skipped": traffic.skipped,
        "metric": project.spec.primary_metric,
        "settings": spec.model_dump(mode="json"),
        "created_at": started.isoformat(timespec="microseconds"),
    }
    if len(rows) < spec.min_examples:  # no verdict on noise: nothing is embedded, nothing is generated
        buckets = [
            BucketResult(start=low, end=high, n=len(part), status="too_few")
            for (low, high), part in zip(edges, split_rows(rows, edges), strict=True)
        ]
        return _finish(project, DriftReport(**base, verdict="too_few", buckets=buckets), track=track)

    ref_texts = [input_text(e) for e in reference.examples]
    vectors = embed_texts(ref_texts + [r.text for r in rows])
    ref_vectors, window_vectors = vectors[: len(ref_texts)], vectors[len(ref_texts) :]
    outputs = _output_reference(project, traffic.model, reference, rows, reference_outputs, progress=progress)
    side = ReferenceSide(ref_texts, ref_vectors, outputs.reference)
    ctx = MetricContext.from_project(project, use_embeddings=False)

    quality, quality_extra = None, []
    if labelled:
        quality, signal = quality_signal(
            ctx,
            rows,
            labelled,
            project.spec.primary_metric,
            outputs.champion_metric,
            bootstrap=spec.bootstrap,
            seed=spec.seed,
        )
        if signal is not None:
            too_few = signal.n_window < spec.min_examples and signal.status != "untested"
            quality_extra = [dataclasses.replace(signal, status="too_few") if too_few else signal]
    signals, drift = window_signals(ctx, spec, side, rows, window_vectors, extra=quality_extra)
    buckets = _buckets(ctx, project, side, rows, window_vectors, edges)
    report = DriftReport(
        **base,
        verdict=worst(signals),
        signals=signals,
        buckets=buckets,
        top_examples=_top_examples(rows, drift, spec.top_examples),
        output_reference=outputs.reference.kind,
        output_reference_detail=outputs.reference.detail,
        quality=quality,
        champion_metric=outputs.champion_metric,
        champion_metric_source=outputs.champion_source,
        embedding_map=_embedding_map(ref_vectors, window_vectors[drift.indices]),
    )
    return _finish(project, report, track=track)


@dataclasses.dataclass(frozen=True)
class _Outputs:
    reference: OutputReference
    champion_metric: float | None = None
    champion_source: str = ""


def _output_reference(
    project: Project,
    model: str | None,
    reference: Reference,
    rows: list[TrafficRow],
    given: list[str] | None,
    *,
    progress: bool,
) -> _Outputs:
    """The watched model's answers to reference dev inputs (and its dev figure), else the dev set's gold."""
    spec = project.spec.monitor
    dev = reference.dev or reference.train
    gold = OutputReference(
        kind="gold",
        targets=[e.target for e in dev],
        detail=f"gold targets of {len(dev)} reference examples: "
        + ("monitor.reference_outputs is 0" if spec.reference_outputs == 0 else f"{model} could not be resolved"),
    )
    if given is not None:
        return _Outputs(OutputReference(kind="given", outputs=list(given), detail=f"{len(given)} outputs given"))
    if not any(r.output is not None for r in rows):
        return _Outputs(OutputReference(kind="none", detail="the traffic carries no outputs"))
    watched = _watched(project, model) if model is not None and spec.reference_outputs > 0 else None
    if watched is None:
        return _Outputs(gold)
    candidate, models, metadata = watched
    examples = (reference.dev_pool or dev)[: spec.reference_outputs]
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S-%f}"
    out = project.state_dir / "runs" / f"monitor-reference-{stamp}"
    summary = evaluate(
        project,
        examples=examples,
        candidates=[candidate],
        extra_models=models,
        out=out,
        track=False,
        progress=progress,
    )
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    metric = project.spec.primary_metric
    figure, where = summary.candidates[0].metrics[metric].value, f"{model} on {len(examples)} reference dev examples"
    if metadata.get("metric") == metric and isinstance(metadata.get("best_metric"), int | float):
        figure, where = float(metadata["best_metric"]), f"best_metric of {model}'s adapter metadata"
    return _Outputs(
        OutputReference(
            kind="model",
            outputs=[p["output"] for p in predictions],
            tokens=[int(p["completion_tokens"]) for p in predictions],
            detail=f"{model}'s answers to {len(examples)} reference dev inputs, eval run {out.name}",
        ),
        champion_metric=figure,
        champion_source=where,
    )


def _watched(project: Project, model: str) -> tuple[CandidateSpec, dict[str, ModelSpec], dict[str, Any]] | None:
    """How to run the watched name on reference inputs: a model of the spec, an alias's adapter or a project
    adapter (with the task's schema as a grammar for ``extract``, as ``tunewise serve`` applies it)."""
    if model in project.spec.models:
        candidate = next((c for c in project.spec.candidates if c.model == model), None)
        return candidate or CandidateSpec(name="watched", model=model), {}, {}
    directory: Path | None = None
    if "@" in model:
        registered, alias = model.rsplit("@", 1)
        for target in registered_aliases(project):
            if target.model == registered and target.alias == alias:
                directory = local_artifact_path(target.source)
    else:
        directory = project.state_dir / "adapters" / model
    if directory is None or not (directory / "adapter_config.json").is_file():
        return None
    metadata = _read_json(directory / "metadata.json")
    base = metadata.get("base_model") or project.spec.train.base_model
    grammar = project.spec.task.kind == "extract" and project.output_schema is not None
    models = {WATCHED: ModelSpec(backend="local", path=base, adapter=str(directory))}
    return CandidateSpec(name="watched", model=WATCHED, constrained=grammar), models, metadata


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _buckets(
    ctx: MetricContext,
    project: Project,
    side: ReferenceSide,
    rows: list[TrafficRow],
    vectors: np.ndarray,
    edges: list[tuple[float, float]],
) -> list[BucketResult]:
    spec = project.spec.monitor
    position = {id(row): i for i, row in enumerate(rows)}
    buckets = []
    for (low, high), part in zip(edges, split_rows(rows, edges), strict=True):
        if len(part) < spec.min_examples:
            buckets.append(BucketResult(start=low, end=high, n=len(part), status="too_few"))
            continue
        part_vectors = vectors[[position[id(row)] for row in part]]
        signals, _ = window_signals(ctx, spec, side, part, part_vectors)
        buckets.append(BucketResult(start=low, end=high, n=len(part), status=worst(signals), signals=signals))
    return buckets


def _top_examples(rows: list[TrafficRow], drift: EmbeddingDrift, count: int) -> list[DriftExample]:
    """The tested rows ranked by the mean of two percentile ranks: domain-classifier score and distance to the
    nearest reference input (production-like *and* unlike anything in the reference)."""
    if count == 0 or len(drift.indices) == 0:
        return []
    rank = rankdata(drift.domain_scores) + rankdata(drift.nearest_distances)
    order = np.argsort(-rank, kind="stable")[:count]
    examples = []
    for position in order:
        row = rows[int(drift.indices[position])]
        examples.append(
            DriftExample(
                id=row.id,
                created=row.created,
                text=row.text[:500],
                domain_score=round(float(drift.domain_scores[position]), 4),
                nearest_distance=round(float(drift.nearest_distances[position]), 4),
                output=row.output[:300] if row.output is not None else None,
            )
        )
    return examples


def _embedding_map(reference: np.ndarray, window: np.ndarray) -> dict[str, list[list[float]]]:
    points = pca_2d(np.concatenate([reference, window]).astype(np.float64))
    rounded = np.round(points, 4).tolist()
    return {"reference": rounded[: len(reference)], "window": rounded[len(reference) :]}


def _finish(project: Project, report: DriftReport, *, track: bool) -> DriftReport:
    """Write ``report.{json,md,html}`` into the run directory atomically; log it to MLflow before it is renamed
    into place, so a tracking failure leaves no run directory behind."""
    with atomic_run_dir(report.run_dir, "monitor") as tmp:
        write_monitor_report(tmp, report)
        if track:
            report = dataclasses.replace(report, mlflow_run_id=log_monitor(project, report, files=tmp))
        atomic_write_text(tmp / REPORT_FILE, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return report
