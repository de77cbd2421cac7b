"""The decision report: ``decision.json``, Markdown, and self-contained HTML with the tree drawn as inline SVG."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from markupsafe import Markup

from tunewise.config import Project
from tunewise.decide.record import Decision
from tunewise.decide.sufficiency import MAX_N
from tunewise.decide.tree import ACTIONS, TERMINAL_GAP, TERMINAL_OK, TREE
from tunewise.io.outputs import atomic_run_dir
from tunewise.report.page import render_page, write_report
from tunewise.tracking import start_run

COLORS = {"yes": "#1a7f37", "no": "#6e7781", "unknown": "#bf8700"}


def write_decision(project: Project, decision: Decision, directory: Path, *, track: bool = True) -> Decision:
    """Write ``decision.json``, ``report.md`` and ``report.html`` atomically; log them to MLflow when ``track``."""
    if track:
        decision = dataclasses.replace(decision, mlflow_run_id=_log_mlflow(project, decision))
    with atomic_run_dir(directory, "decide") as tmp:
        (tmp / "decision.json").write_text(
            json.dumps(decision.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8"
        )
        write_report(tmp, to_markdown(decision), to_html(decision))
    return decision


def to_markdown(d: Decision) -> str:
    """The report as Markdown: the recommendation, the tree with every answer and its evidence, probes, data, cost."""
    nodes = list(zip(TREE, d.answers, strict=True))
    return render_page("decision.md.j2", decision=d, actions=ACTIONS, nodes=nodes, max_n=MAX_N)


def to_html(d: Decision) -> str:
    """A self-contained HTML page: the drawn tree, then the Markdown report's content (escaped, preformatted)."""
    tree = Markup(tree_svg(d))  # rendered (and escaped) by its own template
    return render_page("decision.html", decision=d, actions=ACTIONS, tree=tree, markdown=to_markdown(d))


@dataclass(frozen=True)
class _Box:
    kind: ClassVar[str] = "box"
    x: float
    y: float
    w: float
    h: float
    title: str
    detail: str
    tooltip: str
    highlight: bool
    color: str


@dataclass(frozen=True)
class _Line:
    kind: ClassVar[str] = "line"
    x1: float
    y1: float
    x2: float
    y2: float
    color: str
    width: float


@dataclass(frozen=True)
class _Label:
    kind: ClassVar[str] = "label"
    x: float
    y: float
    color: str
    text: str


def tree_svg(d: Decision) -> str:
    """The tree as inline SVG: nodes down the left, 'yes' actions to the right, the taken path highlighted."""
    box_w, box_h, gap, left, right = 430, 58, 34, 10, 520
    shapes: list[_Box | _Line | _Label] = []
    for i, (node, answer) in enumerate(zip(TREE, d.answers, strict=True)):
        y = 10 + i * (box_h + gap)
        visited = node.id in d.path
        detail = f"{answer.answer.upper()}: {answer.reason}"
        shapes.append(_box(left, y, box_w, box_h, node.question, detail, visited, COLORS[answer.answer]))
        fired = answer.answer == "yes"
        decided = visited and fired
        color = "#1a7f37" if decided else "#d0d7de"
        shapes.append(_Line(left + box_w, y + box_h / 2, right, y + box_h / 2, color, 4 if decided else 1.5))
        shapes.append(_Label(left + box_w + 8, y + box_h / 2 - 5, color, "yes"))
        action_color = "#1a7f37" if fired else "#d0d7de"
        shapes.append(_box(right, y + 6, 360, box_h - 12, ACTIONS[node.action].title, "", decided, action_color))
        on = visited and not decided
        shapes.append(
            _Line(left + 30, y + box_h, left + 30, y + box_h + gap, "#0969da" if on else "#d0d7de", 4 if on else 1.5)
        )
        shapes.append(_Label(left + 38, y + box_h + gap / 2 + 4, "#6e7781", "no / unknown"))
    y = 10 + len(TREE) * (box_h + gap)
    terminals = (
        (TERMINAL_OK, "do_not_fine_tune", left, box_w, "none fired, target met"),
        (TERMINAL_GAP, "improve_prompting", right, 360, "none fired, target not met"),
    )
    for terminal, action, x, w, label in terminals:
        shapes.append(_box(x, y, w, box_h, ACTIONS[action].title, label, terminal in d.path, "#0969da"))
    height = (len(TREE) + 1) * (box_h + gap) + 10
    return render_page("decision_tree.svg", height=height, shapes=shapes)


def _box(x: float, y: float, w: float, h: float, title: str, detail: str, highlight: bool, color: str) -> _Box:
    chars = int(w / 6.8)  # ~6.8 px per character at 12 px sans-serif: keep text inside its box
    return _Box(
        x,
        y,
        w,
        h,
        title=title if len(title) <= chars else title[: chars - 1] + "…",
        detail=detail if len(detail) <= chars else detail[: chars - 1] + "…",
        tooltip=f"{title}: {detail}" if detail else title,
        highlight=highlight,
        color=color,
    )


def _log_mlflow(project: Project, d: Decision) -> str | None:
    """Log the decision to the project's MLflow store; ``None`` (not an error) if MLflow is unavailable."""
    try:
        import mlflow

    except ImportError:
        return None
    with start_run(project, f"decide-{d.decision_id}", tags={"tunewise.stage": "decide"}) as run:
        mlflow.log_params(
            {
                "recommendation": d.recommendation,
                "metric": d.metric,
                "threshold": d.threshold,
                "provisional": d.provisional,
            }
        )
        mlflow.set_tags({f"node.{a.node}": a.answer for a in d.answers})
        metrics = {f"probe_seconds.{p.name.split(' ')[0]}": p.seconds for p in d.probes}
        if d.cost and d.cost.compute_usd is not None:
            metrics["compute_usd"] = d.cost.compute_usd
        if d.sufficiency and d.sufficiency.n_needed:
            metrics["examples_needed"] = d.sufficiency.n_needed
        mlflow.log_metrics(metrics)
        mlflow.log_dict(d.to_dict(), "decision.json")
        mlflow.log_text(to_markdown(d), "report.md")
        return str(run.info.run_id)
