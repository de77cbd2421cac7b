"""Where a stage may write, checked before it does any work; run directories carry a marker so that only they are
ever replaced or written into again.

A stage calls :func:`check_output_dir` (a directory it writes) or :func:`check_output_root` (a directory it creates
new directories under) at the start of its public function, so that ``--out .``, ``--out FILE/sub`` or an unwritable
path fail in a second with the path named, not after hours of generation.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_dir, atomic_write_text

RUN_MARKER = ".tunewise-run"
"""Written inside every run directory tunewise creates (eval, train, decide, export, pipeline)."""


def mark_run_dir(directory: str | Path, kind: str) -> None:
    """Mark ``directory`` as a ``kind`` run directory that tunewise made (and so may replace)."""
    atomic_write_text(Path(directory) / RUN_MARKER, json.dumps({"kind": kind}) + "\n")


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory that tunewise created as a run directory."""
    return (Path(path) / RUN_MARKER).is_file()


def check_output_dir(path: str | Path, *, reuse_run_dir: bool = True) -> Path:
    """Check that tunewise may write the directory ``path`` (replacing it, or writing files into it); return it.

    ``path`` may be absent (it and its parents are created), an empty directory, or, with ``reuse_run_dir``, a run
    directory tunewise made (:data:`RUN_MARKER`). Anything else (a file, the current directory, a directory of the
    user's) is refused: tunewise never deletes what it did not create.

    Raises:
        InputError: naming ``path`` and the problem.
    """
    path = Path(path)
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        problem = "is the current directory" if resolved == cwd else "contains the current directory"
        raise InputError(f"{problem}; give a new directory for the output", file=path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise InputError("exists and is not a directory; give a new directory for the output", file=path)
        if not (reuse_run_dir and is_run_dir(path)) and any(path.iterdir()):
            why = "is not empty" if not reuse_run_dir else f"is not a run directory tunewise created (no {RUN_MARKER})"
            raise InputError(
                f"exists and {why}; tunewise replaces only its own run directories: remove it or give a new path",
                file=path,
            )
        _check_writable(path, path)
        _check_writable(path.parent, path)
        return path
    _check_creatable(path)
    return path


def check_output_root(directory: str | Path) -> Path:
    """Check that tunewise can create new entries under ``directory`` (created if absent); return it.

    Raises:
        InputError: naming ``directory``: a file, a path through a file, or not writable.
    """
    directory = Path(directory)
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir():
            raise InputError("exists and is not a directory", file=directory)
        _check_writable(directory, directory)
        return directory
    _check_creatable(directory)
    return directory


def check_output_file(path: str | Path) -> Path:
    """Check that tunewise can write the file ``path`` (replacing a file there); return it.

    Raises:
        InputError: naming ``path``: a directory, a path through a file, or a directory that is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError("is a directory; give a file name for the output", file=path)
    _check_creatable(path)
    return path


@contextlib.contextmanager
def atomic_run_dir(final: str | Path, kind: str) -> Iterator[Path]:
    """:func:`~tunewise.io.atomic.atomic_dir` for a run directory: checked again just before it is replaced (the
    path may have changed during the run) and marked as tunewise's."""
    check_output_dir(final)
    with atomic_dir(final, replace=True) as tmp:
        mark_run_dir(tmp, kind)
        yield tmp


def _check_creatable(path: Path) -> None:
    """``path`` (absent, or a file to replace) can be created: its nearest existing ancestor is a writable directory."""
    for ancestor in path.parents:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                raise InputError(f"{ancestor} is not a directory, so nothing can be written under it", file=path)
            _check_writable(ancestor, path)
            return


def _check_writable(directory: Path, path: Path) -> None:
    if not os.access(directory, os.W_OK | os.X_OK):
        where = "" if directory == path else f" ({directory} is not writable)"
        raise InputError(f"cannot write here{where}: permission denied", file=path)
