"""Verdicts: a signal is ``watch`` or ``drift`` only when its test is significant after Holm's correction across
the signals tested in the same window *and* its effect reaches the band of ``monitor.thresholds``."""

from __future__ import annotations

import dataclasses

from tunewise.config import Band, MonitorThresholds
from tunewise.monitor.record import SEVERITY, SignalResult, Status, Verdict
from tunewise.monitor.stats import holm


def band_status(effect: float | None, band: Band, *, significant: bool) -> Status:
    """``drift`` at or over ``band.drift``, ``watch`` at or over ``band.watch``, when significant; else ``ok``."""
    if effect is None:
        return "untested"
    if not significant:
        return "ok"
    if effect >= band.drift:
        return "drift"
    if effect >= band.watch:
        return "watch"
    return "ok"


def judge(signals: list[SignalResult], thresholds: MonitorThresholds, alpha: float) -> list[SignalResult]:
    """The signals with their Holm-adjusted p-values and statuses (``too_few``/``untested`` ones are kept as they
    are and take no part in the correction)."""
    open_ = [s.status not in ("too_few", "untested") and s.p_value is not None for s in signals]
    adjusted = holm([s.p_value if tested else None for s, tested in zip(signals, open_, strict=True)])
    judged = []
    for signal, tested, p in zip(signals, open_, adjusted, strict=True):
        if not tested:
            judged.append(signal)
            continue
        band: Band = getattr(thresholds, signal.name)
        status = band_status(signal.effect, band, significant=p is not None and p <= alpha)
        judged.append(dataclasses.replace(signal, p_adjusted=p, status=status))
    return judged


def worst(signals: list[SignalResult]) -> Verdict:
    """The worst status among the signals (``ok`` when none was tested)."""
    statuses = [s.status for s in signals if s.status in ("ok", "watch", "drift")]
    return max(statuses, key=lambda s: SEVERITY[s], default="ok")  # type: ignore[return-value]
