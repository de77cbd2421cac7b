"""Atomic writes: all or nothing, and finished directories readable like any other."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tunewise.io.atomic import atomic_dir, atomic_write_text


def test_atomic_dir_renames_on_success_with_normal_permissions(tmp_path: Path) -> None:
    final = tmp_path / "version"
    with atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (final / "a.txt").read_text() == "x"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["version"]


def test_atomic_dir_leaves_nothing_on_failure_and_keeps_the_old_version(tmp_path: Path) -> None:
    final = tmp_path / "run"
    with atomic_dir(final) as tmp:
        (tmp / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(final, replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in final.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    with pytest.raises(FileExistsError), atomic_dir(final):
        pass


def test_atomic_write_text_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "f.json"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_spread_order_samples_a_sorted_file_and_is_stable_when_rows_are_added() -> None:
    from tunewise.examples import spread_order
    from tunewise.records import Example

    rows = [
        Example(f"ex-{i}", [{"role": "user", "content": str(i)}], "a" if i < 50 else "b") for i in range(100)
    ]  # sorted by label
    first = spread_order(rows)[:20]
    assert 5 <= sum(e.target == "b" for e in first) <= 15  # both labels in a prefix
    assert [e.id for e in spread_order(list(reversed(rows)))] == [
        e.id for e in spread_order(rows)
    ]  # file order does not matter
    grown = spread_order([*rows, Example("ex-new", [], "c")])
    assert [e.id for e in grown if e.id != "ex-new"] == [e.id for e in spread_order(rows)]
    assert [e.id for e in spread_order(rows, seed=1)] != [e.id for e in spread_order(rows)]
