"""One refresh at a time per project: an exclusive ``flock`` on ``.tunewise/refresh/lock``.

The kernel releases the lock when its holder exits, killed or not, so a crashed refresh never leaves a stale lock
behind; the file's content (pid, start time, what runs) only names the holder in the refusal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from tunewise.config import Project
from tunewise.errors import TunewiseError


class RefreshBusy(TunewiseError):
    """Another refresh (or promotion, or rollback) of this project holds the lock."""

    def __init__(self, path: Path, holder: dict[str, object]) -> None:
        self.path = path
        self.holder = holder
        who = (
            f"pid {holder.get('pid', '?')}, started {holder.get('started', '?')} ({holder.get('what', 'refresh')})"
            if holder
            else "a process that has not written its name yet"
        )
        super().__init__(
            f"{path}: another refresh of this project is running ({who}); wait for it (--wait) or stop it first"
        )


def lock_path(project: Project) -> Path:
    return project.state_dir / "refresh" / "lock"


@contextlib.contextmanager
def refresh_lock(project: Project, what: str = "refresh", *, wait: bool = False) -> Iterator[None]:
    """Hold the project's refresh lock for the ``with`` block.

    Args:
        what: what the holder does (``refresh``, ``promote``, ``rollback``), named to whoever is refused.
        wait: block until the lock is free instead of refusing.

    Raises:
        RefreshBusy: the lock is held and ``wait`` is false.
    """
    path = lock_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RefreshBusy(path, _holder(path)) from None
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": started, "what": what}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> dict[str, object]:
    try:
        value = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
