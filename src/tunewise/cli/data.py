"""``tunewise data``: check, prepare, sample, list, show and diff dataset versions (thin over tunewise.data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from tunewise.cli.common import console, err_console, handle_errors
from tunewise.config import load_project
from tunewise.config.overrides import with_overrides
from tunewise.data.build import prepare
from tunewise.data.check import check_files
from tunewise.data.sample import budget_rows, sample_file
from tunewise.data.versions import diff_versions, list_versions, load_version
from tunewise.errors import InputError

app = typer.Typer(
    help="Curate data: validate, de-duplicate, redact PII, split without leakage, version.", no_args_is_help=True
)

CONFIG = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory).")


@app.command("check")
def check_command(
    files: list[Path] = typer.Argument(None, help="Data files (default: the spec's train/dev/test)."),
    config: Path = CONFIG,
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Tokenizer for token lengths (embedded name or HF dir; default: the project's model).",
    ),
    no_tokens: bool = typer.Option(False, "--no-tokens", help="Skip the token-length histogram (no tokenizer load)."),
    strict: bool = typer.Option(False, "--strict", help="Warnings (duplicated inputs) also fail the check."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report on data files without changing them; exit 1 when any problem is found."""
    from dataclasses import asdict

    with handle_errors():
        report = check_files(
            load_project(config), list(files or []), model=None if no_tokens else model, tokens=not no_tokens
        )
    if as_json:
        console.print_json(
            json.dumps(
                {"ok": report.ok, "context_window": report.context_window, "files": [asdict(f) for f in report.files]}
            )
        )
    else:
        _print_check(report)
    if not report.ok or (strict and report.warnings):
        raise typer.Exit(1)


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _print_check(report: Any) -> None:
    table = Table(
        title=f"data check (tokens: {report.model or 'skipped'}, context window {report.context_window or '-'})"
    )
    for column in ("file", "rows", "valid", "tokens min/mean/max", "dups", "problems"):
        table.add_column(column)
    for f in report.files:
        tokens = (
            f"{f.token_lengths['min']}/{f.token_lengths['mean']}/{f.token_lengths['max']}" if f.token_lengths else "-"
        )
        table.add_row(
            _short(f.path), str(f.rows), str(f.valid_rows), tokens, str(len(f.duplicates)), str(len(f.problems))
        )
    console.print(table)
    for f in report.files:
        present = {**f.field_presence, **{f"target.{k}": v for k, v in f.target_presence.items()}}
        console.print(
            f"{_short(f.path)} fields present: " + ", ".join(f"{k} {v}" for k, v in present.items()), highlight=False
        )
        if f.token_lengths:
            console.print(
                f"{_short(f.path)} token lengths: "
                + ", ".join(f"{k}: {v}" for k, v in f.token_lengths["histogram"].items()),
                highlight=False,
            )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(f"[red]problem:[/red] {problem}", highlight=False, soft_wrap=True)
    console.print("[green]ok[/green]" if report.ok else f"[red]{len(report.problems)} problem(s)[/red]")


@app.command("prepare")
def prepare_command(
    config: Path = CONFIG,
    near_dup_threshold: float | None = typer.Option(
        None, "--near-dup-threshold", min=0.01, max=1.0, help="Jaccard threshold for near-duplicates."
    ),
    shingle_size: int | None = typer.Option(None, "--shingle-size", min=1, help="Words per shingle."),
    keep_near_duplicates: bool = typer.Option(
        False, "--keep-near-duplicates", help="List near-duplicates without dropping them."
    ),
    pii: str | None = typer.Option(None, "--pii", help="PII mode: off, report, mask, hash, drop_row."),
    split: str | None = typer.Option(None, "--split", help="auto, keep (the spec's files) or resplit."),
    train_ratio: float | None = typer.Option(None, "--train-ratio", help="resplit: train fraction."),
    dev_ratio: float | None = typer.Option(None, "--dev-ratio", help="resplit: dev fraction."),
    test_ratio: float | None = typer.Option(None, "--test-ratio", help="resplit: test fraction."),
    seed: int | None = typer.Option(None, "--seed"),
    group: str | None = typer.Option(
        None, "--group", help="Group key (row field or dotted path, e.g. target.company)."
    ),
    leakage: str | None = typer.Option(
        None, "--leakage", help="report, move or drop dev/test rows with a near twin in train."
    ),
    leakage_threshold: float | None = typer.Option(None, "--leakage-threshold", min=0.01, max=1.0),
    annotator_field: str | None = typer.Option(
        None, "--annotator-field", help="Rows are annotations by this field's annotator."
    ),
) -> None:
    """Build a content-addressed dataset version under .tunewise/datasets/<sha256>/."""

    with handle_errors():
        project = load_project(config)
        ratios = (train_ratio, dev_ratio, test_ratio)
        if any(r is not None for r in ratios) and any(r is None for r in ratios):
            raise InputError("give all three of --train-ratio, --dev-ratio and --test-ratio", field="--train-ratio")
        flags: dict[str, Any] = {
            "near_dup_threshold": near_dup_threshold,
            "shingle_size": shingle_size,
            "pii_mode": pii,
            "split": split,
            "seed": seed,
            "group_key": group,
            "leakage_action": leakage,
            "leakage_threshold": leakage_threshold,
            "annotator_field": annotator_field,
            "drop_near_duplicates": False if keep_near_duplicates else None,
            "split_ratios": None if train_ratio is None else ratios,
        }
        curation = with_overrides(project.spec.curation, flags, field="curation")
        result = prepare(project, curation)
    version = result.version
    counts = version.manifest["counts"]
    verb = "created" if result.created else "unchanged (identical inputs)"
    console.print(f"dataset version [bold]{version.hash}[/bold] {verb}")
    console.print(f"  {version.path}")
    splits = ", ".join(f"{k} {v}" for k, v in counts["splits"].items())
    console.print(
        f"  splits: {splits}; exact dups {counts['exact_duplicates']}, near dups {counts['near_duplicates']}, "
        f"leaking rows {counts['leaking_rows']}"
    )


@app.command("sample")
def sample_command(
    pool: Path = typer.Argument(..., help="Unlabelled JSONL pool."),
    out: Path = typer.Option(..., "--out", "-o", help="Labelling file to write (JSONL)."),
    n: int | None = typer.Option(None, "--n", "-n", min=1, help="Rows to choose."),
    budget: float | None = typer.Option(
        None, "--budget", min=0, help="Labelling budget (same unit as --cost-per-row)."
    ),
    cost_per_row: float = typer.Option(1.0, "--cost-per-row", help="Cost of labelling one row."),
    text_field: str = typer.Option("text", "--text-field"),
    id_field: str = typer.Option("id", "--id-field"),
    method: str = typer.Option("kmeans++", "--method", help="kmeans++ or farthest."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Choose rows to label, spread over the embedding space; report cluster coverage."""

    with handle_errors():
        count = budget_rows(n, budget, cost_per_row)
        with console.status(f"embedding the pool and choosing {count} rows..."):
            result = sample_file(pool, out, count, text_field=text_field, id_field=id_field, seed=seed, method=method)
    console.print(f"wrote {len(result.indices)} rows to [bold]{out}[/bold]")
    console.print(
        f"cluster coverage: {result.covered}/{result.clusters} clusters "
        f"(a random sample of the same size: {result.random_covered})"
    )


@app.command("list")
def list_command(config: Path = CONFIG) -> None:
    """The project's dataset versions, oldest first."""

    with handle_errors():
        versions = list_versions(load_project(config))
    table = Table(title="dataset versions")
    for column in ("hash", "created", "splits", "sources"):
        table.add_column(column)
    for v in versions:
        counts = v.manifest.get("counts", {}).get("splits", {})
        table.add_row(
            v.hash[:12],
            v.manifest.get("created_at", ""),
            ", ".join(f"{k} {n}" for k, n in counts.items()),
            ", ".join(s["path"] for s in v.manifest.get("sources", [])),
        )
    console.print(table if versions else "no dataset versions yet (run: tunewise data prepare)")


@app.command("show")
def show_command(
    ref: str = typer.Argument("latest", help="Hash, unique prefix, or latest."),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print card.json instead of card.md."),
) -> None:
    """Print one version's dataset card."""
    from rich.markdown import Markdown

    with handle_errors():
        version = load_version(load_project(config), ref)
    if as_json:
        console.print_json(json.dumps(version.card().to_dict()))
    else:
        console.print(Markdown(version.card_markdown()))


@app.command("diff")
def diff_command(
    a: str = typer.Argument(..., help="Older version (hash/prefix)."),
    b: str = typer.Argument("latest", help="Newer version."),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Rows added, removed and changed between two versions, and distribution shifts."""

    with handle_errors():
        project = load_project(config)
        diff = diff_versions(load_version(project, a), load_version(project, b))
    if as_json:
        console.print_json(json.dumps(diff))
        return
    console.print(f"{diff['from'][:12]} -> {diff['to'][:12]}")
    for split, d in diff["splits"].items():
        console.print(
            f"[bold]{split}[/bold]: rows {d['rows']['from']} -> {d['rows']['to']}; added {len(d['added'])}, "
            f"removed {len(d['removed'])}, changed {len(d['changed'])}"
        )
        for kind in ("added", "removed", "changed"):
            if d[kind]:
                console.print(
                    f"  {kind}: " + ", ".join(d[kind][:10]) + (" ..." if len(d[kind]) > 10 else ""), highlight=False
                )
        for key, s in d["distribution_shift"].items():
            console.print(f"  {key}: {s['from']} -> {s['to']} ({s['delta']:+d})", highlight=False)
