"""Is a refresh due? By time (the champion is older than ``refresh.every``) or by drift (the latest monitor report,
written since the champion took over, says ``drift``). For cron and CI: ``tunewise refresh --check``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from tunewise.config import Project, duration_seconds
from tunewise.monitor.record import latest_report
from tunewise.records import Record
from tunewise.refresh.promote import read_history
from tunewise.refresh.registry import champion


@dataclass(frozen=True, kw_only=True)
class Due(Record):
    """Whether a refresh is due, and every reason found (empty when not due)."""

    due: bool
    reasons: list[str] = field(default_factory=list)
    champion_version: str | None = None
    champion_since: str | None = None
    """When the champion took over: its last promotion, else its version's registration."""
    drift_report: str | None = None

    def describe(self) -> str:
        if self.due:
            return "refresh due: " + "; ".join(self.reasons)
        return "refresh not due" + (": " + "; ".join(self.reasons) if self.reasons else "")


def check_due(project: Project, *, now: dt.datetime | None = None) -> Due:
    """Check the cadence and the latest drift verdict against the current champion."""
    now = now or dt.datetime.now(dt.UTC)
    current = champion(project)
    if current is None:
        why = f"no {project.spec.champion} yet (set one: tunewise refresh promote --version N)"
        return Due(due=False, reasons=[why])
    since = current.created
    for move in read_history(project):
        if move.to_version == current.version and move.model == current.model:
            since = _utc(move.at) or since
    reasons, not_due = [], []
    every = project.spec.refresh.every
    if every is not None:
        deadline = since + dt.timedelta(seconds=duration_seconds(every))
        age_days = (now - since).total_seconds() / 86400
        if deadline <= now:
            reasons.append(f"the champion (version {current.version}) is {age_days:.1f} days old, over {every}")
        else:
            not_due.append(f"the champion is {age_days:.1f} days old, due at {deadline:%Y-%m-%d %H:%M} UTC ({every})")
    report = latest_report(project)
    report_dir = None
    created = _utc(report.created_at) if report is not None else None
    if report is not None and created is not None and created >= since:
        report_dir = str(report.run_dir)
        if report.verdict == "drift":
            reasons.append(f"the latest monitor report says drift ({report.run_dir})")
        else:
            not_due.append(f"the latest monitor report says {report.verdict}")
    else:
        not_due.append("no monitor report since the champion took over")
    return Due(
        due=bool(reasons),
        reasons=reasons or not_due,
        champion_version=current.version,
        champion_since=since.isoformat(timespec="seconds"),
        drift_report=report_dir,
    )


def _utc(text: str) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
