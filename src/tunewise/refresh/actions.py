"""The alias moves a person asks for: set the champion explicitly (the first one, or any version), roll it back."""

from __future__ import annotations

from tunewise.config import Project
from tunewise.errors import InputError
from tunewise.refresh.lock import refresh_lock
from tunewise.refresh.promote import AliasMove, move_alias, rollback_target
from tunewise.refresh.registry import get_version, version_of_adapter


def promote(
    project: Project,
    *,
    version: str | int | None = None,
    adapter: str | None = None,
    reason: str = "promoted by hand",
    wait: bool = False,
) -> AliasMove:
    """Point the champion alias at a registered version, or at the version of a published adapter.

    Raises:
        InputError: neither or both of ``version`` and ``adapter``; no such version; an incomplete adapter.
        RefreshBusy: a refresh is running.
    """
    if (version is None) == (adapter is None):
        raise InputError("give exactly one of --version and --adapter", field="--version")
    with refresh_lock(project, "promote", wait=wait):
        target = get_version(project, version) if version is not None else version_of_adapter(project, adapter or "")
        return move_alias(project, target, action="promote", reason=reason)


def rollback(project: Project, *, reason: str = "rolled back by hand", wait: bool = False) -> AliasMove:
    """Move the champion alias back to the version its last promotion replaced (and record it).

    Raises:
        InputError: no champion, or nothing it replaced.
        RefreshBusy: a refresh is running.
    """
    with refresh_lock(project, "rollback", wait=wait):
        return move_alias(project, rollback_target(project), action="rollback", reason=reason)
