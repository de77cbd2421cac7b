"""Matplotlib figures for reports, returned as PNG bytes (embedded in HTML, written beside the Markdown)."""

from __future__ import annotations

import io
from typing import Any

from tunewise.records import CandidateResult


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=110)


def png_bytes(fig: Any) -> bytes:
    """A figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def per_field_chart(candidates: list[CandidateResult]) -> bytes | None:
    """Grouped bars: accuracy per field per candidate, with 95% CI error bars."""
    fields = sorted({f for c in candidates for f in c.per_field})
    if not fields:
        return None
    fig, ax = _figure(max(5.0, 1.3 * len(fields) * max(1, len(candidates)) / 2 + 2), 3.4)
    width = 0.8 / len(candidates)
    for i, candidate in enumerate(candidates):
        xs = [j + (i - (len(candidates) - 1) / 2) * width for j in range(len(fields))]
        values = [candidate.per_field[f].value if f in candidate.per_field else 0.0 for f in fields]
        low = [
            v - candidate.per_field[f].ci_low if f in candidate.per_field else 0.0
            for f, v in zip(fields, values, strict=False)
        ]
        high = [
            candidate.per_field[f].ci_high - v if f in candidate.per_field else 0.0
            for f, v in zip(fields, values, strict=False)
        ]
        ax.bar(xs, values, width, yerr=[low, high], capsize=3, label=candidate.name)
    ax.set_xticks(range(len(fields)), fields)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("field accuracy (95% CI)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def latency_chart(latencies: dict[str, list[float]]) -> bytes | None:
    """Box plot of per-example latency for every candidate."""
    names = [n for n, values in latencies.items() if values]
    if not names:
        return None
    fig, ax = _figure(max(4.5, 1.4 * len(names) + 2), 3.0)
    ax.boxplot([latencies[n] for n in names], tick_labels=names, showfliers=True)
    ax.set_ylabel("latency per example (ms)")
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def confusion_chart(labels: list[str], matrix: list[list[int]]) -> bytes | None:
    """Heat map of a (small) confusion matrix, rows = gold, columns = predicted."""
    if not labels:
        return None
    fig, ax = _figure(min(12.0, 2 + 0.35 * len(labels)), min(12.0, 1.6 + 0.35 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    return png_bytes(fig)
