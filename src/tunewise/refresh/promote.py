"""Moving the champion alias: promotion, rollback, and the history that makes rollback possible.

The alias is the only thing a promotion changes, and it is moved last, after the new version's adapter files are
checked complete; ``tunewise serve`` rescans aliases every 2 s and loads the new version before routing to it. Every
move is appended to ``.tunewise/refresh/history.jsonl`` (one JSON object a line, fsynced), the outgoing version is
kept as the ``previous-champion`` alias and as a tag of the incoming one, so that rollback walks back one step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.records import Record
from tunewise.refresh.registry import (
    PREVIOUS_ALIAS,
    ModelVersion,
    alias_version,
    check_complete,
    client,
    registered_model,
)

PREVIOUS_TAG = "tunewise.previous_champion"


@dataclass(frozen=True, kw_only=True)
class AliasMove(Record):
    """One move of the champion alias, as ``history.jsonl`` records it."""

    at: str
    action: Literal["promote", "rollback"]
    model: str
    alias: str
    from_version: str | None
    to_version: str
    reason: str
    decision_id: str | None = None
    """The refresh decision behind a promotion (``None``: promoted or rolled back by hand)."""


def history_path(project: Project) -> Path:
    return project.state_dir / "refresh" / "history.jsonl"


def read_history(project: Project) -> list[AliasMove]:
    """Every alias move, oldest first (a torn last line, from a crash mid-append, is skipped)."""
    path = history_path(project)
    if not path.is_file():
        return []
    moves = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            moves.append(AliasMove.from_dict(json.loads(line)))
        except (ValueError, TypeError):
            continue
    return moves


def _append(project: Project, move: AliasMove) -> None:
    path = history_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(move.to_dict(), ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def move_alias(
    project: Project,
    target: ModelVersion,
    *,
    action: Literal["promote", "rollback"],
    reason: str,
    decision_id: str | None = None,
) -> AliasMove:
    """Point the champion alias at ``target``; keep the outgoing version as ``previous-champion``; record the move.

    Callers hold the refresh lock. Raises:
        InputError: ``target`` is not a complete adapter (the alias is not moved).
    """
    check_complete(target)
    api = client(project)
    name, alias = registered_model(project), project.spec.refresh.alias
    current = alias_version(project, alias)
    if current is not None and current.version == target.version:
        raise InputError(f"{name}@{alias} already points at version {target.version}", field="--version")
    if action == "promote" and current is not None:
        api.set_model_version_tag(name, target.version, PREVIOUS_TAG, current.version)
    api.set_registered_model_alias(name, alias, target.version)
    previous = current.version if action == "promote" and current is not None else _before(project, target.version)
    if previous is not None:
        api.set_registered_model_alias(name, PREVIOUS_ALIAS, previous)
    elif alias_version(project, PREVIOUS_ALIAS) is not None:
        api.delete_registered_model_alias(name, PREVIOUS_ALIAS)
    move = AliasMove(
        at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        action=action,
        model=name,
        alias=alias,
        from_version=current.version if current is not None else None,
        to_version=target.version,
        reason=reason,
        decision_id=decision_id,
    )
    _append(project, move)
    return move


def rollback_target(project: Project) -> ModelVersion:
    """The version the champion was promoted from: the history's last promotion to the current champion, else the
    ``previous-champion`` alias, else the current version's tag.

    Raises:
        InputError: no champion, or nothing to roll back to.
    """
    from tunewise.refresh.registry import champion, get_version

    current = champion(project)
    if current is None:
        raise InputError(f"{project.spec.champion} does not exist: nothing to roll back", field="refresh.alias")
    previous = _before(project, current.version)
    if previous is None:
        found = alias_version(project, PREVIOUS_ALIAS)
        previous = found.version if found is not None and found.version != current.version else None
    previous = previous or current.tags.get(PREVIOUS_TAG)
    if previous is None:
        raise InputError(
            f"{project.spec.champion} (version {current.version}) was never promoted over another version: nothing "
            "to roll back to (tunewise refresh promote --version N sets it explicitly)",
            file=history_path(project),
        )
    return get_version(project, previous)


def _before(project: Project, version: str) -> str | None:
    """The version the last promotion to ``version`` replaced, per the history."""
    for move in reversed(read_history(project)):
        if move.action == "promote" and move.to_version == version:
            return move.from_version
    return None
