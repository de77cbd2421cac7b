"""Refresh: a challenger trained on new labels, a gate against the champion, promotion by MLflow alias.

from tunewise.refresh import refresh, rollback, check_due
decision = refresh(project)            # RefreshDecision: both paired tests, promoted or not, and why
rollback(project)                      # the champion alias back to the version it replaced
check_due(project).due                 # by time (refresh.every) or by drift (the latest monitor report)
"""

from tunewise.refresh.actions import promote, rollback
from tunewise.refresh.cadence import Due, check_due
from tunewise.refresh.data import ChallengerSizes
from tunewise.refresh.gate import GateTest, non_inferiority, superiority
from tunewise.refresh.lock import RefreshBusy, refresh_lock
from tunewise.refresh.promote import AliasMove, read_history
from tunewise.refresh.record import RefreshDecision, latest_decision
from tunewise.refresh.run import refresh

__all__ = [
    "AliasMove",
    "ChallengerSizes",
    "Due",
    "GateTest",
    "RefreshBusy",
    "RefreshDecision",
    "check_due",
    "latest_decision",
    "non_inferiority",
    "promote",
    "read_history",
    "refresh",
    "refresh_lock",
    "rollback",
    "superiority",
]
