"""The decision report: ``decision.json``, Markdown, and self-contained HTML with the tree drawn as inline SVG."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

from tunewise.decide.record import Decision, Evidence
from tunewise.decide.sufficiency import MAX_N
from tunewise.decide.tree import ACTIONS, TERMINAL_GAP, TERMINAL_OK, TREE
from tunewise.io.atomic import atomic_dir
from tunewise.spec import Project

COLORS = {"yes": "#1a7f37", "no": "#6e7781", "unknown": "#bf8700"}


def write_decision(project: Project, decision: Decision, directory: Path, *, track: bool = True) -> Decision:
    """Write ``decision.json``, ``report.md`` and ``report.html`` atomically; log them to MLflow when ``track``."""
    if track:
        decision = dataclasses.replace(decision, mlflow_run_id=_log_mlflow(project, decision))
    with atomic_dir(directory, replace=True) as tmp:
        (tmp / "decision.json").write_text(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        (tmp / "report.md").write_text(to_markdown(decision), encoding="utf-8")
        (tmp / "report.html").write_text(to_html(decision), encoding="utf-8")
    return decision


def _fmt(e: Evidence) -> str:
    value = "n/a" if e.value is None else f"{e.value:.3f}"
    ci = f" [{e.ci_low:.3f}, {e.ci_high:.3f}]" if e.ci_low is not None and e.ci_high is not None else ""
    limit = f" vs {e.threshold}" if e.threshold is not None else ""
    n = f", n={e.n}" if e.n else ""
    run = f", run {e.run_id}" if e.run_id else ""
    return f"{e.label}: {e.metric} {value}{ci}{limit}{n}{run}"


def to_markdown(d: Decision) -> str:
    """The report as Markdown."""
    lines = [f"# Decision for {d.project}: {ACTIONS[d.recommendation].title}", ""]
    if d.provisional:
        lines += ["> Provisional: an answer on the path is 'unknown' or rests on a CI that still includes the target "
                  "(see below); measure more before acting.", ""]
    lines += [d.summary, "", f"**Next:** `{d.next_command}`", "",
              f"**Runner-up:** {ACTIONS[d.runner_up].title if d.runner_up in ACTIONS else d.runner_up} — {d.runner_up_reason}", ""]
    if d.also:
        lines += [f"**Also fired:** {', '.join(ACTIONS[a].title for a in d.also)}", ""]
    lines += [f"Target: {d.metric} >= {d.threshold}. Path: {' → '.join(d.path)}.", "", "## The tree", ""]
    for node, answer in zip(TREE, d.answers, strict=True):
        mark = "**→**" if node.id in d.path else "  "
        lines += [f"{mark} **{node.question}** — **{answer.answer}**{' (declared)' if answer.declared else ''}",
                  f"   - rule: {node.rule}", f"   - {answer.reason}"]
        lines += [f"   - evidence: {_fmt(e)}" for e in answer.evidence]
    lines += ["", "## Probes", "", "| probe | candidates | n | seconds | stopped | error |", "|---|---|---|---|---|---|"]
    for p in d.probes:
        lines.append(f"| {p.name} | {', '.join(p.candidates)} | {p.n} | {p.seconds:.1f} | {p.stopped} | {p.error or ''} |")
    if d.sufficiency:
        s = d.sufficiency
        lines += ["", "## Data sufficiency", "", f"{s['status']}: {s['reason']}."]
        if s.get("sizes"):
            lines.append("Points: " + ", ".join(f"n={n}: {v:.3f}" for n, v in zip(s["sizes"], s["values"])) + ".")
        if s.get("predicted_at_train_size") is not None:
            lines.append(f"The fitted curve at the whole train split ({s['train_size']:,} examples): {s['predicted_at_train_size']:.3f}.")
        if s.get("n_low") is not None:
            low, high = (f"{x:,.0f}" if x < MAX_N else f"beyond {MAX_N:,}" for x in (s["n_low"], s["n_high"]))
            interval = high if low == high else f"{low} – {high}"
            lines.append(f"80% interval of the needed size: {interval}; P(target reachable) = {s['p_reachable']:.2f}.")
    if d.cost:
        lines += ["", "## Cost / ROI", "", *_cost_lines(d.cost)]
    return "\n".join(lines) + "\n"


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def _cost_lines(c: dict) -> list[str]:
    weeks = c["engineering_weeks"]
    phases = ", ".join(f"{k.replace('_', ' ')} {w[0]:g}–{w[1]:g}" for k, w in weeks.items() if k != "total")
    hours = "unknown" if c["compute_hours"] is None else f"{c['compute_hours']:.2f} h"
    tps = "not measured" if c["tokens_per_s"] is None else f"{c['tokens_per_s']:.0f} tokens/s"
    lines = [
        f"- Compute: {c['train_examples']:,} examples × {c['tokens_per_example']:.0f} tokens × {c['epochs']:g} epochs = "
        f"{c['train_tokens']:,.0f} tokens at {tps} → {hours} × ${c['gpu_hour_usd']}/GPU-h = {_money(c['compute_usd'])}",
        f"- Engineering (weeks): {phases}; total {weeks['total'][0]:g}–{weeks['total'][1]:g} → "
        f"{_money(c['engineering_usd'][0])}–{_money(c['engineering_usd'][1])}",
        f"- Refresh: {_money(c['refresh_usd_per_month'][0])}–{_money(c['refresh_usd_per_month'][1])} per month",
        f"- Inference at {c['traffic_tokens_per_month']:,.0f} tokens/month: hosted {_money(c['hosted_usd_per_month'])}, "
        f"self-hosted {_money(c['self_hosted_usd_per_month'])} per month",
        f"- Break-even: {'month ' + str(c['break_even_month']) if c['break_even_month'] else 'none'} "
        f"(upfront {_money(c['upfront_usd'])}, monthly saving {_money(c['monthly_saving_usd'])})",
    ]
    return lines + [f"- Note: {n}" for n in c.get("notes", [])]


def tree_svg(d: Decision) -> str:
    """The tree as inline SVG: nodes down the left, 'yes' actions to the right, the taken path highlighted."""
    box_w, box_h, gap, left, right = 430, 58, 34, 10, 520
    rows = [*TREE, None]
    height = len(rows) * (box_h + gap) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height}" font-family="sans-serif" font-size="12">']
    for i, node in enumerate(rows):
        y = 10 + i * (box_h + gap)
        if node is None:
            terminals = ((TERMINAL_OK, "do_not_fine_tune", left, box_w, "none fired, target met"),
                         (TERMINAL_GAP, "improve_prompting", right, 360, "none fired, target not met"))
            for terminal, action, x, w, label in terminals:
                parts.append(_box(x, y, w, box_h, ACTIONS[action].title, label, terminal in d.path, "#0969da"))
            continue
        answer = d.answers[i]
        visited = node.id in d.path
        parts.append(_box(left, y, box_w, box_h, node.question, f"{answer.answer.upper()}: {answer.reason}", visited, COLORS[answer.answer]))
        fired = answer.answer == "yes"
        decided = visited and fired
        color = "#1a7f37" if decided else "#d0d7de"
        parts.append(f'<line x1="{left + box_w}" y1="{y + box_h / 2}" x2="{right}" y2="{y + box_h / 2}" stroke="{color}" stroke-width="{4 if decided else 1.5}"/>')
        parts.append(f'<text x="{left + box_w + 8}" y="{y + box_h / 2 - 5}" fill="{color}">yes</text>')
        parts.append(_box(right, y + 6, 360, box_h - 12, ACTIONS[node.action].title, "", decided, "#1a7f37" if fired else "#d0d7de"))
        if i < len(TREE):
            on = visited and not decided
            parts.append(f'<line x1="{left + 30}" y1="{y + box_h}" x2="{left + 30}" y2="{y + box_h + gap}" stroke="{"#0969da" if on else "#d0d7de"}" stroke-width="{4 if on else 1.5}"/>')
            parts.append(f'<text x="{left + 38}" y="{y + box_h + gap / 2 + 4}" fill="#6e7781">no / unknown</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _box(x: float, y: float, w: float, h: float, title: str, detail: str, highlight: bool, color: str) -> str:
    tooltip = html.escape(f"{title}: {detail}" if detail else title)
    chars = int(w / 6.8)  # ~6.8 px per character at 12 px sans-serif: keep text inside its box
    title = html.escape(title if len(title) <= chars else title[: chars - 1] + "…")
    detail = html.escape(detail if len(detail) <= chars else detail[: chars - 1] + "…")
    fill = "#ddf4ff" if highlight else "#ffffff"
    return (f'<g><title>{tooltip}</title><rect x="{x}" y="{y}" width="{w}" height="{h}" rx="6" fill="{fill}" stroke="{color}" stroke-width="{3 if highlight else 1}"/>'
            f'<text x="{x + 8}" y="{y + 20}" font-weight="bold">{title}</text>'
            f'<text x="{x + 8}" y="{y + 40}" fill="{color}">{detail}</text></g>')


def to_html(d: Decision) -> str:
    """A self-contained HTML page: the drawn tree, then the Markdown report's content (escaped, preformatted)."""
    body = html.escape(to_markdown(d))
    title = html.escape(f"tunewise decide: {d.project}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}pre{white-space:pre-wrap;background:#f6f8fa;padding:1em}</style>"
            f"</head><body><h1>{html.escape(ACTIONS[d.recommendation].title)}</h1><p>{html.escape(d.summary)}</p>"
            f"{tree_svg(d)}<pre>{body}</pre></body></html>\n")


def _log_mlflow(project: Project, d: Decision) -> str | None:
    """Log the decision to the project's MLflow store; ``None`` (not an error) if MLflow is unavailable."""
    try:
        import mlflow

        from tunewise.tracking import start_run
    except ImportError:
        return None
    with start_run(project, f"decide-{d.decision_id}", tags={"tunewise.stage": "decide"}) as run:
        mlflow.log_params({"recommendation": d.recommendation, "metric": d.metric, "threshold": d.threshold, "provisional": d.provisional})
        mlflow.set_tags({f"node.{a.node}": a.answer for a in d.answers})
        metrics = {f"probe_seconds.{p.name.split(' ')[0]}": p.seconds for p in d.probes}
        if d.cost and d.cost.get("compute_usd") is not None:
            metrics["compute_usd"] = d.cost["compute_usd"]
        if d.sufficiency and d.sufficiency.get("n_needed"):
            metrics["examples_needed"] = d.sufficiency["n_needed"]
        mlflow.log_metrics(metrics)
        mlflow.log_dict(d.to_dict(), "decision.json")
        mlflow.log_text(to_markdown(d), "report.md")
        return str(run.info.run_id)
