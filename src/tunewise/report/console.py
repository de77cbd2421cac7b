"""Records as Rich tables for a terminal: what the CLI and the main job print after each stage."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tunewise.records import EvalSummary


def print_summary(summary: EvalSummary, console: Console) -> None:
    """A compact table: the primary metric with its CI, the other metrics' values, latency and cost; then the tests."""
    primary = summary.primary_metric
    others = [n for n in dict.fromkeys(n for c in summary.candidates for n in c.metrics) if n != primary]
    table = Table(title=f"{summary.split}: {summary.n_examples} examples")
    for column in ["candidate", f"{primary} [95% CI]", *others, "p95 ms", "$/1M tok"]:
        table.add_column(column, overflow="fold")
    for candidate in summary.candidates:
        main = candidate.metrics.get(primary)
        cells = [f"{main.value:.3f} [{main.ci_low:.3f}, {main.ci_high:.3f}]" if main else "—"]
        cells += [f"{candidate.metrics[n].value:.3f}" if n in candidate.metrics else "—" for n in others]
        ops = candidate.operational
        latency, price = ops.get("latency_p95_ms", float("nan")), ops.get("usd_per_1m_tokens", float("nan"))
        table.add_row(candidate.name, *cells, f"{latency:.0f}", f"{price:.3f}")
    console.print(table)
    for p in summary.comparisons:
        if p.metric == primary:
            console.print(
                f"{p.b} vs {p.a}: {p.metric} {p.diff:+.3f} [{p.ci_low:+.3f}, {p.ci_high:+.3f}], "
                f"p = {p.p_value:.4f} ({p.test})"
            )
