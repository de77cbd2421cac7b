"""The serve request log: one SQLite row per request, after llm's ``logs.db``.

WAL mode with ``synchronous=NORMAL`` (a power cut may lose the last commits, never corrupt the file) and a busy
timeout, so several threads and processes can write at once. The schema grows by append-only migrations recorded in
``_migrations`` (``m001_initial``, ...): a change is a new function at the end of :data:`MIGRATIONS`, never an edit
of an old one.

The log holds prompts, so it is private to its owner: the file is created 0600 (SQLite gives its ``-wal`` and
``-shm`` the same mode), the folder made for it 0700, purged rows are zeroed on disk (``secure_delete``), and with
``redact_pii`` PII is replaced by typed placeholders (``[EMAIL]``) before anything reaches SQLite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tunewise.data.redact import mask_everywhere
from tunewise.errors import InputError
from tunewise.records import Record

BUSY_TIMEOUT_S = 10.0
PURGE_EVERY_S = 3600.0
_DAY_S = 86400.0


def default_log_path(state_dir: Path) -> Path:
    """Where a project's request log lives: ``<project>/.tunewise/serve/requests.db``."""
    return state_dir / "serve" / "requests.db"


@dataclass(frozen=True, kw_only=True)
class LoggedRequest(Record):
    """One served request, as logged (after redaction when the log redacts)."""

    request_id: str
    """Unique per request: a second write with the same id is not stored (see :meth:`RequestLog.write`)."""
    created: float
    """Unix time the request arrived."""
    model: str
    """The served name the client asked for (``smollm2-135m``, an adapter name, ``receipts-lora@champion``)."""
    model_version: str
    """What answered: the adapter or base identity (a sha), stable across renames and alias moves."""
    messages: list[dict[str, Any]]
    """The request's chat turns, ``{"role", "content"}`` each."""
    output: str
    latency_ms: float
    key_id: str | None = None
    json_valid: bool | None = None
    """Whether the output parsed as JSON (``None``: not checked)."""
    schema_valid: bool | None = None
    """Whether the output matched the requested JSON schema (``None``: no schema or not checked)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    """Time to the first token (streamed requests)."""
    finish_reason: str = "stop"
    status: int = 200
    """The HTTP status answered."""
    stream: bool = False
    error: str | None = None


_COLUMNS = tuple(name for name in LoggedRequest.__dataclass_fields__)
_BOOLS = {"json_valid", "schema_valid", "stream"}


def _m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            request_id TEXT NOT NULL UNIQUE,
            created REAL NOT NULL,
            model TEXT NOT NULL,
            model_version TEXT NOT NULL,
            messages TEXT NOT NULL,
            output TEXT NOT NULL,
            latency_ms REAL NOT NULL,
            key_id TEXT,
            json_valid INTEGER,
            schema_valid INTEGER,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            ttft_ms REAL,
            finish_reason TEXT NOT NULL,
            status INTEGER NOT NULL,
            stream INTEGER NOT NULL,
            error TEXT
        )"""
    )
    db.execute("CREATE INDEX requests_created ON requests (created)")
    db.execute("CREATE INDEX requests_model_created ON requests (model, created)")


MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [("m001_initial", _m001_initial)]
"""Applied in order, each once, recorded in ``_migrations``. Append only."""


def redact_request(entry: LoggedRequest, *, kinds: list[str] | None = None) -> LoggedRequest:
    """``entry`` with the PII in its messages (every role), output and error replaced by ``[EMAIL]``-style tokens.

    Like the data stage, each value found anywhere is replaced everywhere, so an email the output copies from the
    prompt becomes the same token in both.

    Args:
        kinds: recognizers to run (default: every registered one, see :mod:`tunewise.data.pii`).
    """
    messages, output, error = mask_everywhere([entry.messages, entry.output, entry.error], kinds=kinds)
    return replace(entry, messages=messages, output=output, error=error)


class RequestLog:
    """An open request log. Safe to share between threads; several processes may open the same file.

    Args:
        path: the SQLite file (created, with its folder, when missing).
        redact_pii: replace PII in messages, output and error by typed placeholders before writing.
        pii_kinds: the recognizers redaction runs (default: every registered one).
        retention_days: delete requests older than this on open and at most hourly while writing.
        clock: the current unix time (tests pass a fake one).

    Raises:
        InputError: ``path`` is a directory, cannot be read and written, or is not a request log.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        redact_pii: bool = False,
        pii_kinds: list[str] | None = None,
        retention_days: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.redact_pii = redact_pii
        self.pii_kinds = pii_kinds
        self.retention_days = retention_days
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = _open(self.path)
        self._last_purge = clock()
        if retention_days is not None:
            self.purge(retention_days)

    def write(self, entry: LoggedRequest) -> bool:
        """Store one request, exactly once per ``request_id``.

        A second write of an id already in the log stores nothing and returns ``False`` (the first record stays):
        a retry after an ambiguous failure is safe, and the server can never log a request twice.

        Returns:
            Whether the entry was stored.
        """
        if self.redact_pii:
            entry = redact_request(entry, kinds=self.pii_kinds)
        row = [_to_sql(name, getattr(entry, name)) for name in _COLUMNS]
        with self._lock:
            db = self._connection()
            if self.retention_days is not None and self._clock() - self._last_purge >= PURGE_EVERY_S:
                self._purge(db, self.retention_days)
            names = ", ".join(_COLUMNS)
            marks = ", ".join("?" * len(_COLUMNS))
            cursor = db.execute(f"INSERT OR IGNORE INTO requests ({names}) VALUES ({marks})", row)
            return cursor.rowcount == 1

    def get(self, request_id: str) -> LoggedRequest | None:
        """The logged request with this id, or ``None``."""
        with self._reader() as db:
            row = db.execute("SELECT * FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        return None if row is None else _from_row(row)

    def entries(
        self,
        since: float | None = None,
        until: float | None = None,
        model: str | None = None,
        model_version: str | None = None,
    ) -> Iterator[LoggedRequest]:
        """The logged requests with ``since <= created < until`` (unix times), oldest first.

        Reads on a connection of its own, so writers are not held up while the caller iterates.
        """
        where, params = _where(since, until, model, model_version)
        with self._reader() as db:
            for row in db.execute(f"SELECT * FROM requests{where} ORDER BY created, id", params):
                yield _from_row(row)

    def count(
        self,
        since: float | None = None,
        until: float | None = None,
        model: str | None = None,
        model_version: str | None = None,
    ) -> int:
        """How many logged requests :meth:`entries` would yield for the same filters."""
        where, params = _where(since, until, model, model_version)
        with self._reader() as db:
            return int(db.execute(f"SELECT count(*) FROM requests{where}", params).fetchone()[0])

    def purge(self, older_than_days: float) -> int:
        """Delete the requests created more than ``older_than_days`` ago; return how many were deleted."""
        with self._lock:
            return self._purge(self._connection(), older_than_days)

    def integrity_ok(self) -> bool:
        """Whether SQLite's ``PRAGMA integrity_check`` finds the file sound."""
        with self._lock:
            rows = self._connection().execute("PRAGMA integrity_check").fetchall()
        return rows == [("ok",)]

    def close(self) -> None:
        """Close the log (idempotent); later writes raise ``RuntimeError``."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError(f"request log {self.path} is closed")
        return self._db

    def _purge(self, db: sqlite3.Connection, older_than_days: float) -> int:
        self._last_purge = self._clock()
        deleted = db.execute("DELETE FROM requests WHERE created < ?", (self._clock() - older_than_days * _DAY_S,))
        if deleted.rowcount:
            # Truncate the WAL too, so the deleted prompts leave the -wal file as well as the main one.
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return deleted.rowcount

    def _reader(self) -> _Reader:
        self._connection()
        return _Reader(self.path)


class _Reader:
    """A short-lived connection for reads (WAL lets them run beside the writer), closed on exit."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self.db.row_factory = sqlite3.Row

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _open(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        raise InputError("is a directory, not a request log", file=path)
    if path.parent.exists() and not path.parent.is_dir():
        raise InputError(f"{path.parent} is not a directory", file=path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)  # the mode applies to the last folder, the one made for the log
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise InputError(f"cannot create the request log: {exc.strerror}", file=path) from None
    if not os.access(path, os.R_OK | os.W_OK):
        raise InputError("cannot read and write the request log (permission denied)", file=path)
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        _check_tables(db, path)  # before WAL mode is set: another program's database is left as it was
        _enable_wal(db, path)
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA secure_delete=ON")
        _migrate(db, path)
    except sqlite3.DatabaseError as exc:
        if db is not None:
            db.close()
        raise InputError(f"not a usable SQLite request log: {exc}", file=path) from None
    except BaseException:
        if db is not None:
            db.close()
        raise
    return db


def _enable_wal(db: sqlite3.Connection, path: Path) -> None:
    # The switch to WAL needs the file to itself and SQLite does not call the busy handler for it: when two
    # processes open a new log at once, one sees "database is locked" at once. Retry for the busy timeout; WAL is
    # persistent, so the second process usually finds it already set by the first.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    if mode != "wal":
        raise InputError(f"SQLite refused WAL mode (journal_mode is {mode!r})", file=path)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find nothing left to do
    try:
        _check_tables(db, path)
        db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL NOT NULL)")
        done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
        for name, apply in MIGRATIONS:
            if name not in done:
                apply(db)
                db.execute("INSERT INTO _migrations (name, applied) VALUES (?, ?)", (name, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _check_tables(db: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "_migrations" not in tables:
        raise InputError(f"a SQLite database of something else (tables: {', '.join(sorted(tables))})", file=path)


def _where(
    since: float | None, until: float | None, model: str | None, model_version: str | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("created >= ?", since),
        ("created < ?", until),
        ("model = ?", model),
        ("model_version = ?", model_version),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _to_sql(name: str, value: Any) -> Any:
    if name == "messages":
        return json.dumps(value, ensure_ascii=False)
    if name in _BOOLS and value is not None:
        return int(value)
    return value


def _from_row(row: sqlite3.Row) -> LoggedRequest:
    values: dict[str, Any] = {name: row[name] for name in _COLUMNS}
    values["messages"] = json.loads(values["messages"])
    for name in _BOOLS:
        if values[name] is not None:
            values[name] = bool(values[name])
    return LoggedRequest(**values)
