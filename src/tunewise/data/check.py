"""``tunewise data check``: a report on data files without changing anything."""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise import egress
from tunewise.config import EMBEDDED_MODEL, Project
from tunewise.data.build import source_files
from tunewise.data.dedup import find_exact_duplicates
from tunewise.data.load import load_file
from tunewise.data.normalize import input_text
from tunewise.errors import InputError
from tunewise.examples import target_text
from tunewise.models.embedded import resolve_model_path
from tunewise.models.loading import load_tokenizer
from tunewise.records import Example

HISTOGRAM_EDGES = (0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


@dataclass
class FileReport:
    """What ``check`` found in one file."""

    path: str
    rows: int = 0
    valid_rows: int = 0
    blank_lines: int = 0
    field_presence: dict[str, int] = field(default_factory=dict)
    target_presence: dict[str, int] = field(default_factory=dict)
    empty_inputs: list[str] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    token_lengths: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    """Errors: malformed lines, missing targets, schema violations, empty inputs, rows over the context window."""
    warnings: list[str] = field(default_factory=list)
    """Worth a look but not wrong: duplicated inputs."""


@dataclass
class CheckReport:
    """Per-file reports; ``ok`` is False when any file has a problem."""

    files: list[FileReport]
    model: str | None = None
    context_window: int | None = None

    @property
    def ok(self) -> bool:
        return not any(f.problems for f in self.files)

    @property
    def problems(self) -> list[str]:
        return [p for f in self.files for p in f.problems]

    @property
    def warnings(self) -> list[str]:
        return [w for f in self.files for w in f.warnings]


def histogram(lengths: list[int]) -> dict[str, int]:
    """Counts of lengths per power-of-two bucket, e.g. ``"256-511"``."""
    counts: Counter[str] = Counter()
    for n in lengths:
        for low, high in itertools.pairwise(HISTOGRAM_EDGES):
            if low <= n < high:
                counts[f"{low}-{high - 1}"] += 1
                break
        else:
            counts[f">={HISTOGRAM_EDGES[-1]}"] += 1
    order = [f"{lo}-{hi - 1}" for lo, hi in itertools.pairwise(HISTOGRAM_EDGES)] + [f">={HISTOGRAM_EDGES[-1]}"]
    return {k: counts[k] for k in order if counts[k]}


def token_lengths(examples: list[Example], tokenizer: Any) -> list[int]:
    """Tokens of each full conversation (input turns + the target as the assistant's answer), via the chat template."""
    texts = [
        tokenizer.apply_chat_template([*e.messages, {"role": "assistant", "content": target_text(e)}], tokenize=False)
        for e in examples
    ]
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def check_file(
    project: Project, path: str | Path, *, tokenizer: Any = None, context_window: int | None = None
) -> FileReport:
    """Validate one file and describe it; every problem is kept as ``file:line: field: problem``."""
    loaded = load_file(project, path)
    report = FileReport(
        path=str(path), rows=len(loaded.rows), valid_rows=len(loaded.examples), blank_lines=loaded.blank_lines
    )
    problems: list[InputError] = list(loaded.problems)
    presence: Counter[str] = Counter(k for _, row in loaded.rows for k, v in row.items() if v not in (None, "", [], {}))
    report.field_presence = dict(sorted(presence.items()))
    targets = Counter(
        k for e in loaded.examples if isinstance(e.target, dict) for k, v in e.target.items() if v not in (None, "")
    )
    report.target_presence = dict(sorted(targets.items()))
    for example in loaded.examples:
        if not input_text(example).strip():
            report.empty_inputs.append(example.source)
            problems.append(
                InputError("empty input", file=path, line=_line(example), field=project.spec.data.input_field)
            )
    by_id = {e.id: e for e in loaded.examples}
    for dup in find_exact_duplicates(loaded.examples):
        report.duplicates.append({"row": by_id[dup.id].source, "twin": by_id[dup.twin].source})
        report.warnings.append(
            InputError(
                f"duplicated input (same as line {_line(by_id[dup.twin])})",
                file=path,
                line=_line(by_id[dup.id]),
                field=project.spec.data.input_field,
            ).format()
        )
    if tokenizer is not None and loaded.examples:
        lengths = token_lengths(loaded.examples, tokenizer)
        report.token_lengths = {
            "min": min(lengths),
            "mean": round(sum(lengths) / len(lengths), 1),
            "max": max(lengths),
            "histogram": histogram(lengths),
        }
        if context_window is not None:
            over = [(e, n) for e, n in zip(loaded.examples, lengths, strict=True) if n > context_window]
            report.token_lengths["over_context"] = len(over)
            for example, n in over:
                problems.append(
                    InputError(
                        f"{n} tokens, over the {context_window}-token context window", file=path, line=_line(example)
                    )
                )
    problems.sort(key=lambda p: p.line or 0)
    report.problems = [p.format() for p in problems]
    return report


def _line(example: Example) -> int:
    return int(example.source.rsplit(":", 1)[1])


def load_check_tokenizer(model: str) -> tuple[Any, int | None]:
    """The tokenizer of an embedded model name or HF directory, and its context window (``max_position_embeddings``)."""
    from transformers import AutoConfig

    directory = resolve_model_path(model)
    config = AutoConfig.from_pretrained(directory)
    return load_tokenizer(directory), getattr(config, "max_position_embeddings", None)


@egress.guarded
def check_files(
    project: Project, paths: list[str | Path] | None = None, *, model: str | None = None, tokens: bool = False
) -> CheckReport:
    """Check files (default: the spec's train/dev/test files).

    Args:
        model: tokenizer for the token-length histogram (an embedded name or an HF directory); default: the first
            candidate's local model, else the embedded model.
        tokens: measure token lengths with the default tokenizer (naming ``model`` measures them too).
    """
    model = model or (project_tokenizer(project) if tokens else None)
    if not paths:
        paths = [p for _, p in source_files(project)]
    tokenizer, window = load_check_tokenizer(model) if model else (None, None)
    return CheckReport(
        [check_file(project, p, tokenizer=tokenizer, context_window=window) for p in paths],
        model=model,
        context_window=window,
    )


def project_tokenizer(project: Project) -> str:
    """The tokenizer to measure with: the first candidate's local model, else the embedded model."""
    for candidate in project.spec.candidates:
        spec = project.spec.model_spec(candidate.model)
        if spec.backend == "local" and spec.path:
            return spec.path if spec.path == EMBEDDED_MODEL else str(project.path(spec.path))
    return EMBEDDED_MODEL
