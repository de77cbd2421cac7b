"""API keys: stored hashed (the secret never on disk), verified in constant time, revocable, errors naming the file."""

from __future__ import annotations

import json
import re
import stat
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunewise.cli.main import app as root
from tunewise.errors import InputError
from tunewise.serve.keys import ApiKeys, default_keys_path, digest

SECRET = re.compile(r"^tw-(?P<id>[0-9a-f]{8})-[A-Za-z0-9_-]{43}$")


def test_create_verify_and_revoke(tmp_path: Path) -> None:
    keys = ApiKeys(tmp_path / "keys.json")
    key, secret = keys.create("ci-bot", rate_limit_per_min=30)
    match = SECRET.match(secret)
    assert match and match["id"] == key.key_id
    assert key.name == "ci-bot" and key.rate_limit_per_min == 30 and key.sha256 == digest(secret)
    other, other_secret = keys.create("alice")
    assert keys.verify(secret) == key and keys.verify(other_secret) == other
    assert [k.name for k in keys.list()] == ["ci-bot", "alice"]

    assert keys.revoke(key.key_id) == key
    assert keys.verify(secret) is None and keys.verify(other_secret) == other
    assert [k.key_id for k in keys.list()] == [other.key_id]
    with pytest.raises(InputError, match="no key with id"):
        keys.revoke(key.key_id)


def test_wrong_secrets_are_rejected(tmp_path: Path) -> None:
    keys = ApiKeys(tmp_path / "keys.json")
    key, secret = keys.create("app")
    _, other_secret = keys.create("other")
    last = "A" if secret[-1] != "A" else "B"
    tail = other_secret.split("-", 2)[2]
    for wrong in (
        secret[:-1] + last,  # one character off
        f"tw-{key.key_id}-{tail}",  # this key's id with another key's random part
        secret + "x",
        secret.upper(),
        f"tw-{key.key_id}",
        key.sha256,  # the stored digest is not a credential
        "",
        "Bearer " + secret,
    ):
        assert keys.verify(wrong) is None, wrong


def test_the_secret_is_never_stored_and_the_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "serve" / "keys.json"
    keys = ApiKeys(path)
    _, secret = keys.create("app")
    text = path.read_text()
    assert secret not in text and secret.split("-", 2)[2] not in text
    assert json.loads(text)["version"] == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert ApiKeys(path).verify(secret) is not None  # a fresh reader (the server) accepts it


def test_a_revocation_by_another_process_is_seen_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    server, cli = ApiKeys(path), ApiKeys(path)
    key, secret = cli.create("app")
    assert server.verify(secret) == key
    cli.revoke(key.key_id)
    assert server.verify(secret) is None


def test_names_and_limits_are_checked(tmp_path: Path) -> None:
    keys = ApiKeys(tmp_path / "keys.json")
    keys.create("app")
    with pytest.raises(InputError, match="exists already"):
        keys.create(" app ")
    with pytest.raises(InputError, match="needs a name"):
        keys.create("  ")
    with pytest.raises(InputError, match="at least 1"):
        keys.create("b", rate_limit_per_min=0)


def test_concurrent_creates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    secrets: list[str] = []
    threads = [threading.Thread(target=lambda n=n: secrets.append(ApiKeys(path).create(f"k{n}")[1])) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = ApiKeys(path)
    assert len(keys.list()) == 8 and all(keys.verify(s) for s in secrets)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "malformed JSON"),
        ("[]", "not a keys file"),
        ('{"version": 1, "keys": {}}', "not a keys file"),
        ('{"version": 1, "keys": [3]}', "expected an object"),
        ('{"version": 1, "keys": [{"key_id": "ab"}]}', "not a key record"),
        (
            '{"version": 1, "keys": [{"key_id": "ab", "name": "x", "created": 1.0, "sha256": "short"}]}',
            "bad value 'short'",
        ),
    ],
)
def test_a_malformed_file_is_an_error_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    keys = ApiKeys(path)
    for call in (keys.list, lambda: keys.verify("tw-ab-x"), lambda: keys.create("new")):
        with pytest.raises(InputError, match=problem) as caught:
            call()
        assert caught.value.file == str(path)
    assert path.read_text() == content  # a create on a bad file does not overwrite it


def test_a_missing_file_means_no_keys(tmp_path: Path) -> None:
    keys = ApiKeys(tmp_path / "keys.json")
    assert keys.list() == [] and keys.verify("tw-abcd1234-" + "x" * 43) is None


def test_keys_commands(tmp_path: Path) -> None:
    (tmp_path / "tunewise.yaml").write_text("name: served\ntask: {kind: generate}\ndata: {}\n")
    runner = CliRunner()
    created = runner.invoke(root, ["serve", "keys", "create", "ci-bot", "--rate-limit", "60", "-c", str(tmp_path)])
    assert created.exit_code == 0, created.output
    secret = next(line for line in created.output.splitlines() if SECRET.match(line))
    assert "cannot be shown again" in created.output
    keys = ApiKeys(default_keys_path(tmp_path / ".tunewise"))
    key = keys.verify(secret)
    assert key is not None and key.rate_limit_per_min == 60

    listed = runner.invoke(root, ["serve", "keys", "list", "-c", str(tmp_path)])
    assert listed.exit_code == 0 and key.key_id in listed.output and secret not in listed.output
    assert key.sha256 not in runner.invoke(root, ["serve", "keys", "list", "--json", "-c", str(tmp_path)]).output

    revoked = runner.invoke(root, ["serve", "keys", "revoke", key.key_id, "-c", str(tmp_path)])
    assert revoked.exit_code == 0 and keys.verify(secret) is None
    again = runner.invoke(root, ["serve", "keys", "revoke", key.key_id, "-c", str(tmp_path)])
    assert again.exit_code == 1 and "no key with id" in again.output
