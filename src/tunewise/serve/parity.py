"""Does the engine serve an adapter as the in-process evaluation scores it? The same dev examples through both.

Both sides decode greedily and, for a model with a schema (an ``extract`` adapter), constrained to that schema, as
the server answers by default; the check fails when the task metric moves more than ``tolerance`` (1 point).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tunewise.config import CandidateSpec, ModelSpec, Project
from tunewise.eval import evaluate
from tunewise.io.jsonl import read_jsonl
from tunewise.records import Prediction, Record
from tunewise.serve.catalog import ServedModel

DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True, kw_only=True)
class ServeParity(Record):
    """One model's task metric in process and through the server, on the same examples."""

    model: str
    version: str
    metric: str
    n: int
    in_process: float
    served: float
    tolerance: float
    identical_outputs: int
    """Examples whose served output is character-for-character the in-process one."""
    error: str | None = None
    """Why the check could not run (it then fails)."""

    @property
    def difference(self) -> float:
        return self.served - self.in_process

    @property
    def passed(self) -> bool:
        return self.error is None and abs(self.difference) <= self.tolerance + 1e-9

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.model}: parity check FAILED: {self.error}"
        verdict = "ok" if self.passed else f"FAILED (tolerance {self.tolerance:.3f})"
        return (
            f"{self.model}: {self.metric} {self.served:.3f} served vs {self.in_process:.3f} in process "
            f"({self.difference:+.3f}) on {self.n} dev examples, {self.identical_outputs} identical outputs: {verdict}"
        )


def check_parity(
    project: Project,
    base_url: str,
    model: ServedModel,
    *,
    limit: int = 20,
    tolerance: float = DEFAULT_TOLERANCE,
    concurrency: int = 4,
    api_key: str | None = None,
) -> ServeParity:
    """Evaluate ``model`` on the first ``limit`` dev examples in process and through the server at ``base_url``.

    Args:
        api_key: the bearer token sent to the server (its check token, to address an adapter still pending).

    Raises:
        InputError: the project has no dev split.
    """
    constrained = model.json_schema is not None
    local = ModelSpec(backend="local", path=model.base, adapter=str(model.adapter_dir) if model.adapter_dir else None)
    key_env = None
    if api_key is not None:
        key_env = f"TUNEWISE_PARITY_KEY_{model.version[:12].upper()}"
        os.environ[key_env] = api_key  # the openai backend reads its key from the environment
    served = ModelSpec(
        backend="openai",
        base_url=base_url,
        model=model.name,
        api_key_env=key_env,
        on_premises=True,
        concurrency=concurrency,
        max_retries=8,
    )
    candidates = [
        CandidateSpec(name="in-process", model="parity-local", constrained=constrained),
        CandidateSpec(name="served", model="parity-served", constrained=constrained),
    ]
    with tempfile.TemporaryDirectory(prefix="tunewise-parity-") as scratch:
        summary = evaluate(
            project,
            split="dev",
            limit=limit,
            out=Path(scratch) / "run",
            candidates=candidates,
            extra_models={"parity-local": local, "parity-served": served},
            track=False,
            progress=False,
        )
        outputs = _outputs(Path(scratch) / "run")
    metric = summary.primary_metric
    same = sum(1 for texts in outputs.values() if len(set(texts.values())) == 1 and len(texts) == 2)
    return ServeParity(
        model=model.name,
        version=model.version,
        metric=metric,
        n=summary.n_examples,
        in_process=summary.candidate("in-process").metrics[metric].value,
        served=summary.candidate("served").metrics[metric].value,
        tolerance=tolerance,
        identical_outputs=same,
    )


def _outputs(run_dir: Path) -> dict[str, dict[str, str]]:
    """example id -> candidate -> output text, from the run's ``predictions.jsonl``."""
    found: dict[str, dict[str, str]] = {}
    for _, row in read_jsonl(run_dir / "predictions.jsonl"):
        prediction = Prediction.from_dict(row)
        found.setdefault(prediction.id, {})[prediction.candidate] = prediction.output
    return found


def failed_check(model: ServedModel, error: str) -> ServeParity:
    """A check that could not run: it fails, and says why."""
    return ServeParity(
        model=model.name,
        version=model.version,
        metric="",
        n=0,
        in_process=0.0,
        served=0.0,
        tolerance=DEFAULT_TOLERANCE,
        identical_outputs=0,
        error=error,
    )
