"""``export_adapter``: merge -> safetensors, GGUF (f16 / q8_0), then parity of every artifact with the adapter."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from tunewise import egress
from tunewise.config import ModelSpec, Project
from tunewise.errors import InputError
from tunewise.examples import load_examples, target_text
from tunewise.export.gguf import ExportError, gguf_metadata, gguf_types, load_gguf_model
from tunewise.export.merge import load_adapter_model, merge_and_save, resolve_base_model
from tunewise.export.parity import (
    DEFAULT_TOLERANCES,
    GgufChecks,
    LogitParity,
    ParityReport,
    Tolerance,
    compare_logits,
    forward_logits,
    judge_artifact,
    parity_report,
    parity_token_ids,
    task_parity,
    write_parity,
)
from tunewise.io.atomic import atomic_write_text, file_sha256
from tunewise.io.outputs import RUN_MARKER, atomic_run_dir, check_output_dir
from tunewise.llamacpp.convert import convert_to_gguf
from tunewise.models.checkpoint import save_plain_checkpoint
from tunewise.records import Message, Record

PARITY_PROMPTS = 3
MAX_PARITY_TOKENS = 512
_FALLBACK_CONVERSATIONS: list[list[Message]] = [
    [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}],
    [
        {"role": "system", "content": "Extract the fields as JSON."},
        {"role": "user", "content": "BOOK TA .K SDN BHD 25/12/2018 TOTAL 9.00"},
        {"role": "assistant", "content": '{"company": "BOOK TA .K SDN BHD", "date": "25/12/2018", "total": "9.00"}'},
    ],
]


@dataclass(frozen=True, kw_only=True)
class ExportResult(Record):
    """What an export wrote and whether every artifact kept parity with the adapter."""

    out_dir: Path
    merged_dir: Path
    gguf_files: dict[str, Path]
    """GGUF type -> its file."""
    parity: ParityReport
    files: dict[str, str] = field(default_factory=dict)
    """Relative path -> SHA-256 of every shipped file."""

    @property
    def passed(self) -> bool:
        return self.parity.passed


@egress.guarded
def export_adapter(
    adapter_dir: str | Path,
    *,
    out_dir: str | Path | None = None,
    gguf: tuple[str, ...] | list[str] = ("f16", "q8_0"),
    eval_examples: int = 0,
    project: Project | None = None,
    base_model: str | None = None,
    tolerances: dict[str, Tolerance] | None = None,
    max_metric_drop: float | None = None,
    replace: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Merge an adapter into its base, export GGUF files, and check every artifact against base + adapter.

    Args:
        adapter_dir: a PEFT adapter directory (``tunewise train`` output).
        out_dir: where to write (default ``<adapter_dir>-export``); written atomically.
        gguf: GGUF types to export (``f16``, ``q8_0``, ``bf16``, ``f32``); empty for safetensors only.
        eval_examples: dev examples to generate and score for task parity (0: logits parity only; needs ``project``).
        project: the project whose dev split, prompts and task metric are used.
        base_model: override the base model recorded with the adapter.
        tolerances: per artifact kind (``merged``, ``f16``, ``q8_0``, ...), default :data:`DEFAULT_TOLERANCES`.
        max_metric_drop: the tolerated task-metric drop of every artifact kind, over ``tolerances``.
        replace: overwrite an existing ``out_dir``.
        progress: print each step.

    Returns:
        The :class:`ExportResult`; ``parity.json``, ``parity.md`` and ``parity.html`` are in ``out_dir`` even when
        parity fails.

    Raises:
        InputError: not an adapter directory, an unknown GGUF type, an existing ``out_dir``, ``eval_examples`` without
            a project.
        LlamaCppError: the GGUF converter is unavailable or fails (nothing is written then).
    """
    outtypes = gguf_types(gguf)
    adapter_dir = Path(adapter_dir).resolve()
    base = resolve_base_model(adapter_dir, base_model)
    out_dir = Path(out_dir) if out_dir is not None else adapter_dir.with_name(f"{adapter_dir.name}-export")
    if out_dir.exists() and not replace:
        raise InputError("export directory already exists (use --force to replace it)", file=out_dir)
    check_output_dir(out_dir)  # --force replaces only an export directory tunewise wrote
    if eval_examples > 0 and project is None:
        raise InputError("task parity (--eval N) needs a project spec for its dev split and metric", field="--eval")
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    if max_metric_drop is not None:
        tolerances = {kind: dataclasses.replace(t, max_metric_drop=max_metric_drop) for kind, t in tolerances.items()}
    console = Console(stderr=True, quiet=not progress)
    conversations = _parity_conversations(project)

    with atomic_run_dir(out_dir, "export") as tmp, tempfile.TemporaryDirectory(prefix="tunewise-export-") as scratch:
        console.print(f"[dim]loading {base} + adapter {adapter_dir.name}[/dim]")
        model, tokenizer = load_adapter_model(base, adapter_dir)
        token_ids = [ids[:MAX_PARITY_TOKENS] for ids in parity_token_ids(tokenizer, conversations)]
        reference_logits = forward_logits(model, token_ids)
        console.print("[dim]merging and saving safetensors[/dim]")
        merged = merge_and_save(model, tokenizer, tmp / "merged")
        merged_logits = forward_logits(merged, token_ids)
        del model, merged
        logits: dict[str, LogitParity] = {"merged": compare_logits(reference_logits, merged_logits)}
        checks: dict[str, GgufChecks] = {}
        eval_models = {"merged": ModelSpec(backend="local", path=str(tmp / "merged"))}
        gguf_files: dict[str, Path] = {}
        for outtype in outtypes:
            name = f"gguf-{outtype}"
            console.print(f"[dim]GGUF {outtype}: converting, reloading and comparing[/dim]")
            path = convert_to_gguf(tmp / "merged", tmp / "gguf" / f"model-{outtype}.gguf", outtype)
            gguf_files[outtype] = out_dir / "gguf" / path.name
            logits[name], checks[name], dequantized = _check_gguf(
                path, tokenizer, conversations, token_ids, reference_logits, merged_logits, Path(scratch) / name
            )
            eval_models[name] = ModelSpec(backend="local", path=str(dequantized))
        tasks: dict[str, Any] = {}
        if eval_examples > 0 and project is not None:
            console.print(f"[dim]task parity: generating on {eval_examples} dev examples[/dim]")
            reference = ModelSpec(backend="local", path=base, adapter=str(adapter_dir))
            tasks, _ = task_parity(
                project, reference, eval_models, limit=eval_examples, out_dir=tmp / "eval", progress=progress
            )
        artifacts = []
        for name in logits:
            kind = name.removeprefix("gguf-")
            path = tmp / "merged" if name == "merged" else tmp / "gguf" / f"model-{kind}.gguf"
            artifacts.append(
                judge_artifact(
                    name=name,
                    kind=kind,
                    path=str(out_dir / path.relative_to(tmp)),
                    logits=logits[name],
                    task=tasks.get(name),
                    tolerance=tolerances[kind],
                    gguf=checks.get(name),
                    template_expected=bool(tokenizer.chat_template),
                )
            )
        report = parity_report(str(adapter_dir), base, artifacts)
        write_parity(report, tmp)
        shipped_files = [
            p for p in sorted(tmp.rglob("*")) if p.is_file() and p.relative_to(tmp).parts[0] not in ("eval", RUN_MARKER)
        ]
        files = {str(p.relative_to(tmp)): file_sha256(p) for p in shipped_files}
        manifest = {"adapter_dir": str(adapter_dir), "base_model": base, "passed": report.passed, "files": files}
        atomic_write_text(tmp / "export.json", json.dumps(manifest, indent=2))
    return ExportResult(
        out_dir=out_dir, merged_dir=out_dir / "merged", gguf_files=gguf_files, parity=report, files=files
    )


def _parity_conversations(project: Project | None) -> list[list[Message]]:
    """Full conversations (answer included) from the first dev examples, or two built-in ones without a project."""
    if project is None or project.spec.data.dev is None:
        return _FALLBACK_CONVERSATIONS

    examples = load_examples(project, project.split_path("dev"), limit=PARITY_PROMPTS)
    return [[*e.messages, {"role": "assistant", "content": target_text(e)}] for e in examples]


def _check_gguf(
    path: Path,
    tokenizer: Any,
    conversations: list[list[Message]],
    token_ids: list[list[int]],
    reference_logits: list[Any],
    merged_logits: list[Any],
    scratch: Path,
) -> tuple[LogitParity, GgufChecks, Path]:
    """Reload a GGUF with transformers: its tokenizer and chat template, logits vs the adapter and the merge.

    Returns the logits parity with the adapter, the GGUF's own checks, and a safetensors copy of the dequantized
    GGUF weights for the task evaluation.
    """
    model, gguf_tokenizer = load_gguf_model(path)
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    gguf_ids = [list(gguf_tokenizer(t, add_special_tokens=False)["input_ids"])[:MAX_PARITY_TOKENS] for t in texts]
    metadata = gguf_metadata(path)
    gguf_logits = forward_logits(model, token_ids)
    checks = GgufChecks(
        file_sha256=file_sha256(path),
        bytes=path.stat().st_size,
        tokenizer_matches=gguf_ids == token_ids,
        chat_template_matches=metadata.get("tokenizer.chat_template") == tokenizer.chat_template,
        file_type=metadata.get("general.file_type"),
        vs_merged=compare_logits(merged_logits, gguf_logits),
    )
    # The task evaluation loads models by directory: save the dequantized weights (what llama.cpp computes with,
    # up to kernel rounding) next to the original tokenizer.
    save_plain_checkpoint(model, tokenizer, scratch)
    if not (scratch / "config.json").is_file():
        raise ExportError(f"could not save the dequantized {path.name} for evaluation")
    shutil.rmtree(scratch / ".cache", ignore_errors=True)
    return compare_logits(reference_logits, gguf_logits), checks, scratch
