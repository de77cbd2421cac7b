"""Writes that are all-or-nothing: a crash leaves the old content (or nothing), never a half-written file.

Temporary files and directories sit beside their target as ``.<name>.tunewise-<pid>-<host>-<random>.tmp`` (an old
directory being swapped out: ``….old``). The owner's pid and a tag of its host and pid namespace are in the name, so a
later write can tell the leftovers of a killed process from the work of a live one and remove only the former.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

STALE_AFTER_S = 60.0
"""A temporary entry of a dead owner is removed only once it is this old (its owner may have just finished)."""
FOREIGN_STALE_AFTER_S = 7 * 24 * 3600.0
"""An entry made on another host (or pid namespace), whose owner cannot be checked, is removed after a week."""
_TEMP_NAME = re.compile(r"^\..+\.tunewise-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]+\.(?:tmp|old)$")


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    The file gets the usual mode under the umask (0644 with umask 022), like any file the user creates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path.parent)
    tmp = _temp_path(path, "tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text (UTF-8) version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; rename it to ``final`` only if the block succeeds.

    With ``replace=False`` an existing ``final`` is an error (versions are immutable); with ``replace=True``
    an old directory is swapped out after the new one is complete. Only directories are ever replaced; a path
    the user gave must first pass :func:`tunewise.io.outputs.check_output_dir`, which refuses any directory
    tunewise did not create.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not replace:
        raise FileExistsError(f"{final} already exists")
    if (final.exists() or final.is_symlink()) and not final.is_dir():
        raise NotADirectoryError(f"{final} exists and is not a directory")
    clean_stale_temps(final.parent)
    tmp = _temp_path(final, "tmp")
    os.mkdir(tmp, 0o777)  # the usual directory mode under the umask
    try:
        yield tmp
        if final.exists():
            old = _temp_path(final, "old")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temps(directory: str | Path, *, min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the temporary entries that killed writers left in ``directory``; return what was removed.

    An entry is stale when its owner (the pid in its name, on this host and pid namespace) is gone, or the pid now
    belongs to a process started after the entry was last written, and it is at least ``min_age_s`` old. An entry
    of another host is stale after :data:`FOREIGN_STALE_AFTER_S`. A live owner's entry is never touched. Failures to
    list or remove are ignored: cleaning never fails a write.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            written = entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        age = now - written
        if match["host"] == _host_tag():
            stale = age >= min_age_s and not _owner_alive(int(match["pid"]), written)
        else:
            stale = age >= FOREIGN_STALE_AFTER_S
        if not stale:
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path)
    return removed


def temp_owner(name: str) -> int | None:
    """The pid recorded in a temporary entry's name, ``None`` for any other name."""
    match = _TEMP_NAME.match(name)
    return int(match["pid"]) if match else None


def _temp_path(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.tunewise-{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}.{kind}")


_HOST_TAG: str | None = None


def _host_tag() -> str:
    """8 hex digits naming this host and pid namespace: where a recorded pid can be checked with ``kill(pid, 0)``."""
    global _HOST_TAG
    if _HOST_TAG is None:
        try:
            namespace = os.readlink("/proc/self/ns/pid")
        except OSError:
            namespace = ""
        _HOST_TAG = hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]
    return _HOST_TAG


def _owner_alive(pid: int, written: float) -> bool:
    """Whether process ``pid`` may still own an entry last written at ``written`` (epoch seconds)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    started = _process_start(pid)
    # A process started after the entry was last written cannot have written it: the pid was reused.
    return started is None or started <= written + 2.0


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), from /proc; ``None`` where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        ticks = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22, counted after the parenthesised name
        return int(boot.split()[1]) + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration, IndexError):
        return None
