"""The monitor report (Markdown + HTML with a trend chart and an embedding map) and its MLflow run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tunewise.config import Project
from tunewise.io.atomic import atomic_write_bytes
from tunewise.monitor.record import SEVERITY, BucketResult, DriftReport, SignalResult
from tunewise.report.page import Table, render_page, write_report
from tunewise.report.plots import png_bytes
from tunewise.tracking import _mlflow, metric_key, start_run

TREND_CHART = "trend.png"
MAP_CHART = "embedding_map.png"

DESCRIPTIONS = {
    "input_auc": "inputs: embedding drift (domain-classifier AUC; MMD test)",
    "novel_inputs": "inputs: share unlike any reference input",
    "input_length": "inputs: median length change",
    "non_latin": "inputs: share mostly outside the Latin script",
    "empty_inputs": "inputs: share empty",
    "output_validity": "outputs: drop of the valid share",
    "null_fields": "outputs: null or empty fields",
    "label_shift": "outputs: predicted-label distribution (TV distance)",
    "refusals": "outputs: share refusing",
    "output_length": "outputs: median length change",
    "quality": "quality: drop below the champion",
}


def when(moment: float | None) -> str:
    """A unix time as a UTC date-time (``-`` for none)."""
    if moment is None:
        return "-"
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M")


def headline(report: DriftReport) -> str:
    """The answer in one sentence: the verdict and the signals that make it."""
    if report.verdict == "too_few":
        return (
            f"Too few examples: {report.n_window} requests in the window, fewer than monitor.min_examples "
            f"({report.settings.get('min_examples')}); no verdict on noise."
        )
    flagged = sorted((s for s in report.signals if s.status in ("watch", "drift")), key=lambda s: -SEVERITY[s.status])
    if not flagged:
        return f"No drift: {report.n_window} requests look like the reference on every signal tested."
    parts = ", ".join(f"{s.name} {s.status} ({effect_text(s)})" for s in flagged)
    return f"{report.verdict.upper()}: {parts} over {report.n_window} requests."


def effect_text(signal: SignalResult) -> str:
    """The effect in its units, with its CI when there is one."""
    if signal.effect is None:
        return "-"
    digits = ".3f"
    text = format(signal.effect, digits)
    if signal.ci_low is not None and signal.ci_high is not None:
        text += f" [{signal.ci_low:{digits}}, {signal.ci_high:{digits}}]"
    return text


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def signals_table(signals: list[SignalResult]) -> Table:
    rows = [
        [
            s.name,
            DESCRIPTIONS.get(s.name, s.group),
            _num(s.reference_value),
            _num(s.window_value),
            effect_text(s),
            _num(s.p_value),
            _num(s.p_adjusted),
            s.test,
            f"{s.n_reference} / {s.n_window}",
            s.status,
        ]
        for s in signals
    ]
    header = ["signal", "what", "reference", "window", "effect [95% CI]", "p", "p (Holm)", "test", "n ref / win"]
    return Table([*header, "status"], rows)


def buckets_table(buckets: list[BucketResult]) -> Table:
    rows = []
    for bucket in buckets:
        auc = bucket.signal("input_auc")
        flagged = [f"{s.name} {s.status}" for s in bucket.signals if s.status in ("watch", "drift")]
        rows.append(
            [
                f"{when(bucket.start)} – {when(bucket.end)}",
                str(bucket.n),
                bucket.status,
                effect_text(auc) if auc else "-",
                _num(auc.p_value) if auc else "-",
                ", ".join(flagged) or "-",
            ]
        )
    return Table(["bucket (UTC)", "requests", "status", "AUC [95% CI]", "MMD p", "signals flagged"], rows)


def examples_table(report: DriftReport) -> Table:
    rows = [
        [e.id, when(e.created), f"{e.domain_score:.3f}", f"{e.nearest_distance:.3f}", " ".join(e.text.split())[:160]]
        for e in report.top_examples
    ]
    return Table(["id", "created (UTC)", "domain score", "nearest-reference distance", "input"], rows)


def thresholds_table(report: DriftReport) -> Table:
    bands = report.settings.get("thresholds", {})
    rows = [[name, f"{band['watch']:g}", f"{band['drift']:g}"] for name, band in bands.items()]
    return Table(["signal", "watch at", "drift at"], rows)


def trend_chart(report: DriftReport) -> bytes | None:
    """Per bucket: the domain classifier's AUC with its CI (and the bands), and the MMD p-value against alpha."""
    tested = [(b, b.signal("input_auc")) for b in report.buckets if b.signal("input_auc") is not None]
    if not tested:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.0, 5.0), dpi=110, sharex=True)
    xs = [dt.datetime.fromtimestamp(b.start, dt.UTC) for b, _ in tested]
    aucs = [s.effect or 0.5 for _, s in tested if s is not None]
    errors = [
        [max((s.effect or 0) - (s.ci_low or 0), 0) for _, s in tested if s is not None],
        [max((s.ci_high or 0) - (s.effect or 0), 0) for _, s in tested if s is not None],
    ]
    colours = {"ok": "#4c72b0", "watch": "#dd8452", "drift": "#c44e52"}
    top.errorbar(xs, aucs, yerr=errors, fmt="-", color="#999999", capsize=3, zorder=1)
    top.scatter(xs, aucs, c=[colours.get(b.status, "#999999") for b, _ in tested], zorder=2)
    band = report.settings.get("thresholds", {}).get("input_auc", {})
    for level, style in (("watch", ":"), ("drift", "--")):
        if level in band:
            top.axhline(band[level], linestyle=style, color="#888888", label=f"{level} {band[level]:g}")
    top.axhline(0.5, color="#cccccc")
    top.set_ylabel("domain classifier AUC (95% CI)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    pvalues = [max(s.p_value or 1.0, 1e-6) for _, s in tested if s is not None]
    bottom.semilogy(xs, pvalues, "o-", color="#4c72b0")
    bottom.axhline(report.settings.get("alpha", 0.01), linestyle="--", color="#c44e52", label="alpha")
    bottom.set_ylabel("MMD permutation p")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    return png_bytes(fig)


def map_chart(report: DriftReport) -> bytes | None:
    """The reference and window embeddings on their first two principal components."""
    reference, window = report.embedding_map.get("reference", []), report.embedding_map.get("window", [])
    if not reference or not window:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.scatter(*zip(*reference, strict=True), s=8, alpha=0.5, color="#999999", label="reference")
    ax.scatter(*zip(*window, strict=True), s=10, alpha=0.7, color="#dd8452", label="window")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8)
    return png_bytes(fig)


def write_monitor_report(run_dir: Path, report: DriftReport) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` (and the charts as PNG files) in ``run_dir``."""
    trend, embedding = trend_chart(report), map_chart(report)
    for name, png in ((TREND_CHART, trend), (MAP_CHART, embedding)):
        if png is not None:
            atomic_write_bytes(run_dir / name, png)
    context = {
        "report": report,
        "headline": headline(report),
        "when": when,
        "signals": signals_table(report.signals),
        "buckets": buckets_table(report.buckets),
        "examples": examples_table(report),
        "thresholds": thresholds_table(report),
        "trend": trend,
        "trend_file": TREND_CHART if trend is not None else None,
        "embedding": embedding,
        "embedding_file": MAP_CHART if embedding is not None else None,
    }
    return write_report(run_dir, render_page("monitor.md.j2", **context), render_page("monitor.html", **context))


def log_monitor(project: Project, report: DriftReport, *, files: Path | None = None) -> str:
    """An MLflow run with the window, every signal's effect and p-value, the verdict and the report.

    ``files`` is where the report's files are now (the run directory's temporary twin, before it is renamed).
    """
    mlflow = _mlflow()
    folder = files or report.run_dir
    tags = {"tunewise.stage": "monitor", "tunewise.verdict": report.verdict}
    with start_run(project, f"monitor-{report.run_dir.name}", tags=tags) as run:
        mlflow.log_params(
            {
                "model": report.model,
                "model_version": report.model_version,
                "traffic_source": report.traffic_source,
                "reference_source": report.reference_source,
                "since": when(report.since),
                "until": when(report.until),
                "bucket": report.bucket,
                "output_reference": report.output_reference,
                "alpha": report.settings.get("alpha"),
            }
        )
        metrics = {
            "n_window": float(report.n_window),
            "n_reference": float(report.n_reference),
            "verdict_severity": float(SEVERITY[report.verdict]),
            **{metric_key(f"skipped.{k}"): float(v) for k, v in report.skipped.items()},
        }
        for signal in report.signals:
            for suffix, value in (
                ("effect", signal.effect),
                ("ci_low", signal.ci_low),
                ("ci_high", signal.ci_high),
                ("p_value", signal.p_value),
                ("p_adjusted", signal.p_adjusted),
            ):
                if value is not None:
                    metrics[metric_key(f"{signal.name}.{suffix}")] = float(value)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(report.to_dict(), "report.json")
        for name in ("report.md", "report.html", TREND_CHART, MAP_CHART):
            if (folder / name).is_file():
                mlflow.log_artifact(str(folder / name))
        return str(run.info.run_id)
