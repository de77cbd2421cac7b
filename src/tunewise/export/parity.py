"""Parity of an exported artifact with the adapter it came from: logits on a few prompts, and the task metric.

Merged models that silently degrade are a known failure (Unsloth #1558): a wrong merge, a dtype slip, a tokenizer
that changed in conversion, a quantization that erases a small fine-tune. Each artifact is compared with the
reference (base + adapter, fp32) on

- **logits**: teacher-forced forward passes over a few full conversations (prompt + answer): max and mean
  |Δlogit| and how often the top-1 token agrees;
- **the task**: greedy generation on N dev examples through the eval harness: the task metric of both, its
  delta with a paired test, and how many outputs are identical.

Each kind of artifact has tolerances (fp32 merge: tight; f16 and q8_0 GGUF: looser); any breach fails the export.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunewise.io.atomic import atomic_write_text
from tunewise.io.jsonl import read_jsonl
from tunewise.records import EvalSummary, Message
from tunewise.spec import CandidateSpec, ModelSpec, Project

REFERENCE = "adapter"


@dataclass(frozen=True)
class Tolerance:
    """How far an artifact may drift from the adapter before the export fails."""

    max_abs_logit: float
    min_top1_agreement: float
    max_metric_drop: float


DEFAULT_TOLERANCES = {
    "merged": Tolerance(max_abs_logit=1e-3, min_top1_agreement=0.99, max_metric_drop=0.02),
    "f32": Tolerance(max_abs_logit=1e-3, min_top1_agreement=0.99, max_metric_drop=0.02),
    "f16": Tolerance(max_abs_logit=0.5, min_top1_agreement=0.98, max_metric_drop=0.02),
    "bf16": Tolerance(max_abs_logit=2.0, min_top1_agreement=0.95, max_metric_drop=0.05),
    "q8_0": Tolerance(max_abs_logit=6.0, min_top1_agreement=0.9, max_metric_drop=0.05),
}


@dataclass(frozen=True)
class LogitParity:
    """Teacher-forced logits of an artifact against the reference over the same token ids."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float
    prompts: int
    positions: int


@dataclass(frozen=True)
class TaskParity:
    """The task metric of an artifact and of the reference on the same dev examples."""

    metric: str
    reference: float
    value: float
    delta: float
    p_value: float | None
    identical_outputs: int
    n: int


@dataclass(frozen=True)
class ArtifactParity:
    """One exported artifact's parity and verdict."""

    name: str
    kind: str
    path: str
    logits: LogitParity | None
    task: TaskParity | None
    tolerance: Tolerance
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class ParityReport:
    """Every artifact of one export against its adapter."""

    adapter_dir: str
    base_model: str
    artifacts: list[ArtifactParity]

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        for artifact, raw in zip(self.artifacts, data["artifacts"], strict=True):
            raw["passed"] = artifact.passed
        return data


def parity_token_ids(tokenizer: Any, conversations: list[list[Message]]) -> list[list[int]]:
    """Render full conversations (answers included) with the chat template and tokenize them."""
    ids = []
    for conversation in conversations:
        text = tokenizer.apply_chat_template(conversation, tokenize=False)
        ids.append(list(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return ids


def forward_logits(model: Any, token_ids: list[list[int]]) -> list[Any]:
    """Logits ``(seq, vocab)`` in fp32 on CPU for each sequence, one unpadded forward pass each."""
    import torch

    out = []
    with torch.inference_mode():
        for ids in token_ids:
            logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
            out.append(logits.float().cpu())
    return out


def compare_logits(reference: list[Any], candidate: list[Any]) -> LogitParity:
    """Max / mean |Δlogit| and top-1 agreement over every position of every sequence."""
    import torch

    diffs = [(c - r).abs() for r, c in zip(reference, candidate, strict=True)]
    positions = sum(d.shape[0] for d in diffs)
    agree = sum(int((r.argmax(-1) == c.argmax(-1)).sum()) for r, c in zip(reference, candidate, strict=True))
    return LogitParity(
        max_abs_diff=float(max(d.max() for d in diffs)),
        mean_abs_diff=float(torch.cat([d.flatten() for d in diffs]).mean()),
        top1_agreement=agree / positions,
        prompts=len(diffs),
        positions=positions,
    )


def task_parity(
    project: Project,
    reference: ModelSpec,
    artifacts: dict[str, ModelSpec],
    *,
    limit: int,
    out_dir: Path,
    progress: bool = True,
) -> tuple[dict[str, TaskParity], EvalSummary]:
    """Evaluate the reference and every artifact on the first ``limit`` dev examples with the eval harness.

    Returns:
        Task parity per artifact name, and the evaluation summary (its run directory is ``out_dir``).
    """
    from tunewise.eval import evaluate

    models = {f"export:{REFERENCE}": reference, **{f"export:{name}": spec for name, spec in artifacts.items()}}
    candidates = [CandidateSpec(name=REFERENCE, model=f"export:{REFERENCE}")]
    candidates += [CandidateSpec(name=name, model=f"export:{name}") for name in artifacts]
    summary = evaluate(
        project, split="dev", limit=limit, out=out_dir, candidates=candidates, extra_models=models, track=False, progress=progress
    )
    outputs: dict[str, dict[str, str]] = {}
    for _, row in read_jsonl(out_dir / "predictions.jsonl"):
        outputs.setdefault(row["candidate"], {})[row["id"]] = row["output"]
    metric = summary.primary_metric
    ref_value = summary.candidate(REFERENCE).metrics[metric].value
    results = {}
    for name in artifacts:
        value = summary.candidate(name).metrics[metric].value
        comparison = next((c for c in summary.comparisons if c.metric == metric and {c.a, c.b} == {REFERENCE, name}), None)
        same = sum(outputs[name].get(i) == text for i, text in outputs[REFERENCE].items())
        results[name] = TaskParity(
            metric=metric,
            reference=ref_value,
            value=value,
            delta=value - ref_value,
            p_value=comparison.p_value if comparison is not None else None,
            identical_outputs=same,
            n=summary.n_examples,
        )
    return results, summary


def verdict(logits: LogitParity | None, task: TaskParity | None, tolerance: Tolerance) -> list[str]:
    """The tolerance breaches, as sentences with the numbers (empty: the artifact passes)."""
    failures = []
    if logits is not None:
        if logits.max_abs_diff > tolerance.max_abs_logit:
            failures.append(f"max |Δlogit| {logits.max_abs_diff:.3g} > {tolerance.max_abs_logit:g}")
        if logits.top1_agreement < tolerance.min_top1_agreement:
            failures.append(f"top-1 agreement {logits.top1_agreement:.3f} < {tolerance.min_top1_agreement:g}")
    if task is not None and -task.delta > tolerance.max_metric_drop:
        failures.append(
            f"{task.metric} dropped {-task.delta:.3f} ({task.reference:.3f} -> {task.value:.3f}) > {tolerance.max_metric_drop:g}"
        )
    return failures


def write_parity(report: ParityReport, out_dir: Path) -> None:
    """``parity.json`` and ``parity.md`` in the export directory, atomically."""
    atomic_write_text(out_dir / "parity.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    atomic_write_text(out_dir / "parity.md", render_parity_markdown(report))


def render_parity_markdown(report: ParityReport) -> str:
    """A table per artifact: logits and task parity against the adapter, and the verdict."""
    lines = [
        "# Export parity",
        "",
        f"Adapter `{report.adapter_dir}` on base `{report.base_model}`; every artifact is compared with base + adapter (fp32).",
        "",
        f"**{'PASS' if report.passed else 'FAIL'}**",
        "",
        "| artifact | max abs Δlogit | mean abs Δlogit | top-1 agree | task metric (adapter → artifact) | Δ | p | identical outputs | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for a in report.artifacts:
        lg, tk = a.logits, a.task
        logit_cells = f"{lg.max_abs_diff:.3g} | {lg.mean_abs_diff:.3g} | {lg.top1_agreement:.3f}" if lg else "– | – | –"
        if tk is not None:
            p = "" if tk.p_value is None else f"{tk.p_value:.3g}"
            task_cells = f"{tk.metric} {tk.reference:.3f} → {tk.value:.3f} | {tk.delta:+.3f} | {p} | {tk.identical_outputs}/{tk.n}"
        else:
            task_cells = "not run | | |"
        verdict_cell = "pass" if a.passed else "FAIL: " + "; ".join(a.failures)
        lines.append(f"| {a.name} (`{Path(a.path).name}`) | {logit_cells} | {task_cells} | {verdict_cell} |")
    lines += ["", "Tolerances: " + "; ".join(
        f"{a.name}: |Δlogit| ≤ {a.tolerance.max_abs_logit:g}, top-1 ≥ {a.tolerance.min_top1_agreement:g}, "
        f"metric drop ≤ {a.tolerance.max_metric_drop:g}" for a in report.artifacts
    ), ""]
    return "\n".join(lines)
