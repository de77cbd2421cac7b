"""API keys for ``tunewise serve``, stored hashed in a JSON file: the secret is shown once, at creation, and never kept.

A secret is ``tw-<key_id>-<43 url-safe characters>`` (256 random bits). The file holds each key's SHA-256 digest;
the server re-reads the file when it changes, so a revoked key stops working without a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewise.errors import InputError
from tunewise.io.atomic import atomic_write_text
from tunewise.records import Record

FILE_VERSION = 1
PREFIX = "tw"


def default_keys_path(state_dir: Path) -> Path:
    """Where a project's API keys live: ``<project>/.tunewise/serve/keys.json``."""
    return state_dir / "serve" / "keys.json"


@dataclass(frozen=True, kw_only=True)
class ApiKey(Record):
    """One key as stored: never the secret, only its digest."""

    key_id: str
    name: str
    created: float
    sha256: str
    """Hex SHA-256 of the whole secret."""
    rate_limit_per_min: int | None = None
    """Requests per minute allowed to this key (``None``: the server's default)."""


def digest(secret: str) -> str:
    """Hex SHA-256 of a secret.

    A fast unsalted hash is the right tool here, unlike for passwords: the secrets are 256-bit random, so neither
    guessing nor a precomputed table can find one from its digest, and a slow hash would only slow every request.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class ApiKeys:
    """The keys file (created 0600, in a 0700 folder when tunewise makes it). Safe to share between threads.

    Raises:
        InputError: (from every method that reads) the file is not a keys file, naming it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, ApiKey]] | None = None

    def create(self, name: str, *, rate_limit_per_min: int | None = None) -> tuple[ApiKey, str]:
        """Make a key; return its record and its secret (shown this once: only its digest is stored).

        Raises:
            InputError: an empty or already used name, or a rate limit below 1.
        """
        name = name.strip()
        if not name:
            raise InputError("a key needs a name", field="name")
        if rate_limit_per_min is not None and rate_limit_per_min < 1:
            raise InputError(f"must be at least 1, got {rate_limit_per_min}", field="rate_limit_per_min")
        with self._locked():
            keys = self._read()
            if any(k.name == name for k in keys.values()):
                raise InputError(f"a key named {name!r} exists already (revoke it first)", file=self.path, field="name")
            key_id = secrets.token_hex(4)
            while key_id in keys:
                key_id = secrets.token_hex(4)
            secret = f"{PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"
            key = ApiKey(
                key_id=key_id,
                name=name,
                created=time.time(),
                sha256=digest(secret),
                rate_limit_per_min=rate_limit_per_min,
            )
            self._write({**keys, key_id: key})
        return key, secret

    def verify(self, secret: str) -> ApiKey | None:
        """The key whose secret this is, or ``None`` (malformed, unknown, revoked or wrong)."""
        parts = secret.split("-", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return None
        key = self._current().get(parts[1])
        if key is None:
            return None
        # Constant-time comparison: the digest of a near-miss guess must not show how near it was.
        return key if hmac.compare_digest(digest(secret), key.sha256) else None

    def revoke(self, key_id: str) -> ApiKey:
        """Delete a key; return what it was.

        Raises:
            InputError: no key has this id.
        """
        with self._locked():
            keys = self._read()
            if key_id not in keys:
                raise InputError(f"no key with id {key_id!r}", file=self.path, field="key_id")
            removed = keys.pop(key_id)
            self._write(keys)
        return removed

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return sorted(self._current().values(), key=lambda k: (k.created, k.key_id))

    def _current(self) -> dict[str, ApiKey]:
        """The keys, re-read only when the file changed (by inode, size and mtime)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            if self._cache is None or self._cache[0] != stamp:
                self._cache = (stamp, self._read())
            return self._cache[1]

    def _read(self) -> dict[str, ApiKey]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the keys file: {exc}", file=self.path) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"malformed JSON: {exc.msg} (column {exc.colno})"
            raise InputError(problem, file=self.path, line=exc.lineno) from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
            raise InputError('not a keys file: expected {"version": 1, "keys": [...]}', file=self.path)
        keys: dict[str, ApiKey] = {}
        for index, raw in enumerate(data["keys"]):
            key = _parse_key(raw, self.path, index)
            keys[key.key_id] = key
        return keys

    def _write(self, keys: dict[str, ApiKey]) -> None:
        payload: dict[str, Any] = {"version": FILE_VERSION, "keys": [k.to_dict() for k in keys.values()]}
        atomic_write_text(self.path, json.dumps(payload, indent=2) + "\n")
        # The file holds digests, not secrets, and its folder is 0700 when tunewise made it, so the instant before
        # this chmod exposes nothing usable; it keeps even the key names and limits private to the owner.
        os.chmod(self.path, 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write across threads and processes (two ``keys create`` at once lose nothing)."""
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700)
        if self.path.is_dir():
            raise InputError("is a directory, not a keys file", file=self.path)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with self._lock, open(os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600), "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _parse_key(raw: Any, path: Path, index: int) -> ApiKey:
    field = f"keys[{index}]"
    if not isinstance(raw, dict):
        raise InputError("expected an object", file=path, field=field)
    try:
        key = ApiKey.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise InputError(f"not a key record: {exc}", file=path, field=field) from None
    checks = (
        ("key_id", isinstance(key.key_id, str) and key.key_id.isalnum()),
        ("name", isinstance(key.name, str)),
        ("created", isinstance(key.created, int | float)),
        ("sha256", isinstance(key.sha256, str) and len(key.sha256) == 64),
        ("rate_limit_per_min", key.rate_limit_per_min is None or isinstance(key.rate_limit_per_min, int)),
    )
    for name, ok in checks:
        if not ok:
            raise InputError(f"bad value {raw.get(name)!r}", file=path, field=f"{field}.{name}")
    return key
