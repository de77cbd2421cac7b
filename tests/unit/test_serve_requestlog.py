"""The serve request log (SQLite, WAL, exactly once, redaction before disk, retention, private files) and its export."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tunewise.cli.main import app as root
from tunewise.config import Project, project_from_dict
from tunewise.data.build import prepare
from tunewise.data.load import load_file
from tunewise.errors import InputError
from tunewise.serve import requestlog
from tunewise.serve.logs_export import export_logs, parse_time
from tunewise.serve.requestlog import LoggedRequest, RequestLog, default_log_path

NOW = 1_750_000_000.0
EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"


def entry(i: int, **changes: Any) -> LoggedRequest:
    values: dict[str, Any] = {
        "request_id": f"req-{i}",
        "created": NOW + i,
        "model": "smollm2-135m",
        "model_version": "sha-base",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"question {i}"}],
        "output": f"answer {i}",
        "latency_ms": 12.5,
        "prompt_tokens": 7,
        "completion_tokens": 3,
    }
    return LoggedRequest(**{**values, **changes})


def raw_bytes(db_path: Path) -> bytes:
    """The log as it lies on disk: the main file and SQLite's -wal and -shm beside it."""
    parts = [db_path, db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def test_wal_mode_and_migrations_are_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    RequestLog(path).close()
    RequestLog(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == ["m001_initial"]


def test_a_request_is_logged_exactly_once_and_round_trips(tmp_path: Path) -> None:
    first = entry(1, json_valid=True, schema_valid=False, ttft_ms=4.0, stream=True, key_id="abcd1234")
    with RequestLog(tmp_path / "r.db") as log:
        assert log.write(first) is True
        assert log.write(first) is False
        assert log.write(entry(1, output="a different answer")) is False
        assert log.count() == 1
        assert log.get("req-1") == first  # the first write stays, every field as written
        assert log.get("nope") is None


def test_entries_are_in_time_order_and_filtered(tmp_path: Path) -> None:
    with RequestLog(tmp_path / "r.db") as log:
        for i in (3, 1, 2, 5, 4):
            log.write(entry(i, model="a" if i % 2 else "b", model_version=f"v{i % 2}"))
        assert [e.request_id for e in log.entries()] == [f"req-{i}" for i in (1, 2, 3, 4, 5)]
        assert [e.request_id for e in log.entries(since=NOW + 2, until=NOW + 4)] == ["req-2", "req-3"]
        assert [e.request_id for e in log.entries(model="b")] == ["req-2", "req-4"]
        assert log.count(model_version="v1", since=NOW + 2) == 2


def test_eight_threads_writing_at_once_all_land(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "r.db")

    def writer(t: int) -> None:
        for i in range(40):
            assert log.write(entry(t * 1000 + i))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.count() == 320 and len({e.request_id for e in log.entries()}) == 320
    assert log.integrity_ok()
    log.close()


def _process_writer(path: str, offset: int, start: Any) -> None:
    start.wait()
    with RequestLog(path) as log:
        for i in range(100):
            log.write(entry(offset + i))


@pytest.mark.parametrize("attempt", range(5))  # the open race hit about one attempt in three before the fix
def test_two_processes_writing_at_once_all_land(tmp_path: Path, attempt: int) -> None:
    path = tmp_path / "r.db"
    context = multiprocessing.get_context("fork")
    start = context.Event()
    workers = [context.Process(target=_process_writer, args=(str(path), n * 1000, start)) for n in range(2)]
    for worker in workers:
        worker.start()
    start.set()  # both open the new file together: migration and WAL setup must not race
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    with RequestLog(path) as log:
        assert log.count() == 200 and log.integrity_ok()


def test_redaction_removes_pii_before_it_reaches_the_disk(tmp_path: Path) -> None:
    pii = entry(
        1,
        messages=[{"role": "system", "content": f"Reply to {EMAIL}."}, {"role": "user", "content": f"card {CARD}"}],
        output=f"Charged {CARD}; receipt sent to {EMAIL}",
    )
    plain_path, redacted_path = tmp_path / "plain.db", tmp_path / "redacted.db"
    with RequestLog(plain_path) as plain:
        plain.write(pii)
        assert EMAIL.encode() in raw_bytes(plain_path)  # the check below can see PII when it is there
    with RequestLog(redacted_path, redact_pii=True) as log:
        log.write(pii)
        on_disk = raw_bytes(redacted_path)
        stored = log.get("req-1")
    assert stored is not None
    assert stored.output == "Charged [CREDIT_CARD]; receipt sent to [EMAIL]"
    assert stored.messages[0]["content"] == "Reply to [EMAIL]."
    for secret in (EMAIL, CARD, CARD.replace(" ", ""), "jane.doe"):
        assert secret.encode() not in on_disk


def test_retention_purges_on_open_and_hourly_on_write(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    clock = [NOW]
    with RequestLog(path) as log:
        log.write(entry(1, created=NOW - 10 * 86400, output="OLD-SECRET-MARKER"))
        log.write(entry(2, created=NOW - 1 * 86400))
    with RequestLog(path, retention_days=7, clock=lambda: clock[0]) as log:
        assert [e.request_id for e in log.entries()] == ["req-2"]  # purged on open
        assert b"OLD-SECRET-MARKER" not in raw_bytes(path)  # zeroed, not just unlinked from the b-tree
        log.write(entry(3, created=NOW - 8 * 86400))  # stale on arrival, but the next purge is not due yet
        clock[0] += 1800
        log.write(entry(4, created=clock[0]))
        assert log.count() == 3
        clock[0] += 1801
        log.write(entry(5, created=clock[0]))
        assert [e.request_id for e in log.entries()] == ["req-2", "req-4", "req-5"]
        assert log.purge(0.5) == 1  # only req-2 is older than half a day


def test_the_log_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "state" / "serve" / "requests.db"
    with RequestLog(path) as log:
        log.write(entry(1))
        files = [path, path.with_name("requests.db-wal"), path.with_name("requests.db-shm")]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_bad_paths_are_errors_naming_the_file(tmp_path: Path) -> None:
    not_db = tmp_path / "notes.db"
    not_db.write_text("these are my notes, not a database\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    cases = {tmp_path: "is a directory", not_db: "not a usable SQLite request log", other: "something else"}
    for path, problem in cases.items():
        with pytest.raises(InputError, match=problem) as caught:
            RequestLog(path)
        assert caught.value.file == str(path)
    with sqlite3.connect(other) as db:  # another program's database is left as it was
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["users"]


def test_an_unreadable_log_is_an_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.db"
    RequestLog(path).close()
    path.chmod(0)
    if os.geteuid() == 0:  # root may read any file: make the access check answer as for anyone else
        monkeypatch.setattr(requestlog.os, "access", lambda *_: False)
    with pytest.raises(InputError, match="permission denied") as caught:
        RequestLog(path)
    assert caught.value.file == str(path)


def test_a_closed_log_refuses_writes(tmp_path: Path) -> None:
    log = RequestLog(tmp_path / "r.db")
    log.close()
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.write(entry(1))


# --- export -------------------------------------------------------------------------------------------------------


def chat_project(root: Path, data: str | None = None) -> Project:
    raw: dict[str, Any] = {"name": "served", "task": {"kind": "generate"}, "data": {"train": data} if data else {}}
    return project_from_dict(raw, root)


def fill_log(path: Path, n: int = 20) -> None:
    with RequestLog(path) as log:
        for i in range(n):
            log.write(entry(i, json_valid=True))
        log.write(entry(100, status=500, error="engine crashed", output=""))
        log.write(entry(101, output="   "))
        log.write(entry(102, json_valid=False))
        log.write(entry(103, schema_valid=False))
        log.write(entry(104, finish_reason="length"))
        log.write(entry(105, messages=[{"role": "tool", "content": "{}"}]))


def test_export_writes_chat_rows_that_the_data_stage_loads(tmp_path: Path) -> None:
    log_path, out = tmp_path / "r.db", tmp_path / "served.jsonl"
    fill_log(log_path)
    result = export_logs(log_path, out)
    assert result.written == 20 and result.path == out
    assert result.skipped == {
        "empty_output": 1,
        "error": 1,
        "invalid_json": 1,
        "invalid_schema": 1,
        "truncated": 1,
        "unsupported_messages": 1,
    }
    row = json.loads(out.read_text().splitlines()[3])
    assert row["id"] == "req-3" and row["messages"][-1] == {"role": "assistant", "content": "answer 3"}
    assert row["model"] == "smollm2-135m" and row["model_version"] == "sha-base" and row["json_valid"] is True
    assert row["created"] == datetime.fromtimestamp(NOW + 3, UTC).isoformat().replace("+00:00", "Z")

    loaded = load_file(chat_project(tmp_path), out)
    assert loaded.problems == []
    assert [e.id for e in loaded.examples] == [f"req-{i}" for i in range(20)]
    assert loaded.examples[3].target == "answer 3"
    assert loaded.examples[3].messages == entry(3).messages  # the input turns, without the answer

    version = prepare(chat_project(tmp_path, "served.jsonl"), progress=False).version
    assert sum(version.manifest["counts"]["splits"].values()) == 20


def test_export_filters_and_keeps_invalid_outputs_when_asked(tmp_path: Path) -> None:
    log_path = tmp_path / "r.db"
    fill_log(log_path)
    everything = export_logs(log_path, tmp_path / "all.jsonl", only_valid=False)
    assert everything.written == 23 and everything.skipped == {"empty_output": 1, "error": 1, "unsupported_messages": 1}
    window = export_logs(log_path, tmp_path / "w.jsonl", since=NOW + 5, until=NOW + 8)
    assert window.written == 3
    assert export_logs(log_path, tmp_path / "none.jsonl", model="other").written == 0
    with pytest.raises(InputError, match="no request log"):
        export_logs(tmp_path / "missing.db", tmp_path / "x.jsonl")


def test_parse_time_takes_iso_dates_and_durations_ago() -> None:
    assert parse_time("7d", flag="--since", now=NOW) == NOW - 7 * 86400
    assert parse_time("12h", flag="--since", now=NOW) == NOW - 12 * 3600
    assert parse_time("30m", flag="--since", now=NOW) == NOW - 1800
    assert parse_time("1.5w", flag="--since", now=NOW) == NOW - 1.5 * 7 * 86400
    assert parse_time("2025-01-31T14:00Z", flag="--since") == datetime(2025, 1, 31, 14, tzinfo=UTC).timestamp()
    assert parse_time("2025-01-31", flag="--since") == datetime(2025, 1, 31).timestamp()  # local midnight
    for garbage in ("yesterday", "7 days", "-3d", "2025-13-01", ""):
        with pytest.raises(InputError, match="expected an ISO date") as caught:
            parse_time(garbage, flag="--until")
        assert caught.value.field == "--until"


def test_logs_export_command(tmp_path: Path) -> None:
    (tmp_path / "tunewise.yaml").write_text("name: served\ntask: {kind: generate}\ndata: {}\n")
    fill_log(default_log_path(tmp_path / ".tunewise"))
    out = tmp_path / "out.jsonl"
    args = ["logs", "export", "-c", str(tmp_path), "--out", str(out), "--since", "2000-01-01"]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    assert f"wrote 20 examples to {out}" in result.output and "skipped 6" in result.output
    assert len(out.read_text().splitlines()) == 20
    bad = CliRunner().invoke(root, ["logs", "export", "-c", str(tmp_path), "--since", "last week"])
    assert bad.exit_code == 1 and "--since" in bad.output
