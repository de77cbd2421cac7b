"""What killed writers leave behind is cleaned by the next write, never a live writer's work; files get usual modes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunewise.io.atomic import (
    FOREIGN_STALE_AFTER_S,
    STALE_AFTER_S,
    _host_tag,
    _process_start,
    atomic_dir,
    atomic_write_text,
    clean_stale_temps,
    temp_owner,
)

HOUR = 3600.0


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _temp(directory: Path, pid: int, *, age_s: float, host: str | None = None, kind: str = "tmp") -> Path:
    path = directory / f".run.tunewise-{pid}-{host or _host_tag()}-0a1b2c3d.{kind}"
    path.mkdir()
    (path / "partial.jsonl").write_text("{}\n")
    written = time.time() - age_s
    os.utime(path, (written, written))
    return path


def test_a_dead_owners_old_temp_directories_are_removed(tmp_path: Path) -> None:
    dead = _dead_pid()
    tmp, old = _temp(tmp_path, dead, age_s=HOUR), _temp(tmp_path, dead, age_s=HOUR, kind="old")
    assert temp_owner(tmp.name) == dead
    assert sorted(clean_stale_temps(tmp_path)) == sorted([tmp, old])
    assert list(tmp_path.iterdir()) == []


def test_a_live_owners_temp_directory_is_kept_whatever_its_age(tmp_path: Path) -> None:
    mine = _temp(tmp_path, os.getpid(), age_s=0)  # this process is alive and wrote it just now
    assert clean_stale_temps(tmp_path, min_age_s=0) == []  # no age guard: only liveness decides
    assert mine.is_dir()


def test_a_young_temp_directory_is_kept_even_if_its_owner_is_dead(tmp_path: Path) -> None:
    young = _temp(tmp_path, _dead_pid(), age_s=STALE_AFTER_S / 2)
    assert clean_stale_temps(tmp_path) == []
    assert young.is_dir()


def test_a_reused_pid_does_not_keep_a_temp_alive(tmp_path: Path) -> None:
    started = _process_start(os.getpid())
    if started is None:
        pytest.skip("no /proc: a process's start time is unknown")
    # Written an hour before this process started: this process has the pid now, but did not write it.
    reused = _temp(tmp_path, os.getpid(), age_s=time.time() - started + HOUR)
    assert clean_stale_temps(tmp_path) == [reused]


def test_another_hosts_temp_waits_a_week(tmp_path: Path) -> None:
    other = "ffffffff" if _host_tag() != "ffffffff" else "00000000"
    recent = _temp(tmp_path, _dead_pid(), age_s=HOUR, host=other)
    assert clean_stale_temps(tmp_path) == []
    os.utime(recent, (time.time() - FOREIGN_STALE_AFTER_S - HOUR,) * 2)
    assert clean_stale_temps(tmp_path) == [recent]


def test_names_that_are_not_tunewise_temps_are_never_touched(tmp_path: Path) -> None:
    for name in (".notes.tmp", ".run.abc123.tmp", f".run.old-{_dead_pid()}", "run.tunewise-1-00000000-ab.tmp"):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (0, 0))
    assert clean_stale_temps(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 4


def test_a_sigkilled_writer_leaves_a_temp_that_the_next_write_removes(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from tunewise.io.atomic import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'train.jsonl').write_text('{}')\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(120)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "version-a")], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    leftover = Path(writer.stdout.readline().strip())
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert leftover.is_dir() and leftover.parent == tmp_path
    os.utime(leftover, (time.time() - HOUR,) * 2)
    with atomic_dir(tmp_path / "version-b") as tmp:
        (tmp / "train.jsonl").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version-b"]


def test_files_and_directories_get_the_usual_modes_under_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "summary.json", "{}")
        with atomic_dir(tmp_path / "run") as tmp:
            atomic_write_text(tmp / "predictions.jsonl", "")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run" / "predictions.jsonl").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755


def test_atomic_dir_never_replaces_a_file(tmp_path: Path) -> None:
    (tmp_path / "run").write_text("keep me")
    with pytest.raises(NotADirectoryError), atomic_dir(tmp_path / "run", replace=True):
        pass
    assert (tmp_path / "run").read_text() == "keep me"


def test_prepare_removes_what_a_killed_prepare_left_in_the_store(tmp_path: Path) -> None:
    from tests.support.receipts import receipts_project
    from tunewise.data import prepare

    project = receipts_project(tmp_path)
    store = tmp_path / ".tunewise" / "datasets"
    store.mkdir(parents=True)
    leftover = _temp(store, _dead_pid(), age_s=HOUR)
    live = _temp(store, os.getpid(), age_s=0)
    prepare(project, progress=False)
    assert not leftover.exists() and live.is_dir()


def test_run_directory_files_have_the_same_mode_as_dataset_files(tmp_path: Path) -> None:
    from tests.support.receipts import receipts_project, right_answer
    from tunewise.data import prepare
    from tunewise.eval import evaluate
    from tunewise.models import MockBackend

    project = receipts_project(tmp_path)
    previous = os.umask(0o022)
    try:
        version = prepare(project, progress=False).version
        backends = {"echo": MockBackend(respond=right_answer), "bad": MockBackend(["no json"])}
        evaluate(project, out=tmp_path / "run", backends=backends, progress=False, track=False)
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [*version.path.iterdir(), *(tmp_path / "run").iterdir()]}
    assert set(modes.values()) == {0o644}, modes
