"""The zero-egress guard refuses every connection but loopback, Unix sockets and on-premises hosts, before it is made.

Safety: destinations are in TEST-NET-3 (203.0.113.0/24) or under ``.invalid``. A tripwire audit hook, added after the
guard's, fails a test on any real non-loopback connect or lookup that got past the guard, so a broken guard fails
these tests without a packet leaving.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.support.receipts import ROWS, SCHEMA
from tunewise import egress
from tunewise.cli.main import app
from tunewise.config import load_project
from tunewise.egress import EgressError, EgressPolicy
from tunewise.eval import evaluate
from tunewise.models.base import GenerationConfig
from tunewise.models.openai import OpenAIBackend

runner = CliRunner()
_tripwire = {"armed": False, "installed": False}
_LOOPBACK = {None, "", "127.0.0.1", "::1", "localhost"}


def _trip(event: str, args: tuple[Any, ...]) -> None:
    if not _tripwire["armed"] or event not in ("socket.connect", "socket.sendto", "socket.getaddrinfo"):
        return
    if event == "socket.getaddrinfo":
        host = args[0]
    else:
        if args[0].family == socket.AF_UNIX:
            return
        host = args[1][0]
    if host not in _LOOPBACK:
        raise AssertionError(f"tripwire: {event} to {host} got past the zero-egress guard")


@pytest.fixture(autouse=True)
def tripwire() -> Iterator[None]:
    if not _tripwire["installed"]:
        with egress.guard(EgressPolicy(reason="install the hook first, so that it runs before the tripwire")):
            pass
        sys.addaudithook(_trip)
        _tripwire["installed"] = True
    _tripwire["armed"] = True
    try:
        yield
    finally:
        _tripwire["armed"] = False


@contextlib.contextmanager
def tripwire_off() -> Iterator[None]:
    """For events raised with ``sys.audit`` only: they reach every hook but open no socket."""
    _tripwire["armed"] = False
    try:
        yield
    finally:
        _tripwire["armed"] = True


def _write_project(root: Path, *, self_hosted_only: bool = True, **extra: Any) -> Path:
    """The receipts rows as a project on disk, answered by a mock model; ``extra`` merges into the spec."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]))
    answer = json.dumps(ROWS[0]["fields"])
    spec: dict[str, Any] = {
        "name": "egress",
        "task": {"kind": "extract", "instructions": "Extract.", "output_schema": SCHEMA},
        "data": {"dev": "dev.jsonl", "input_field": "text", "target_field": "fields"},
        "targets": {"self_hosted_only": self_hosted_only},
        "models": {"scripted": {"backend": "mock", "outputs": [answer]}},
        "candidates": [{"name": "local", "model": "scripted"}],
        "eval": {"bootstrap_samples": 100},
    }
    for key, value in extra.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    (root / "tunewise.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def test_connect_to_a_remote_address_is_refused_naming_destination_and_caller() -> None:
    sock = socket.socket()
    with egress.guard(EgressPolicy(reason="test")), pytest.raises(EgressError) as raised:
        sock.connect(("203.0.113.5", 443))
    sock.close()
    message = str(raised.value)
    assert "refused a connection to 203.0.113.5:443" in message
    assert "test_egress" in message and "test_connect_to_a_remote_address" in message
    assert "zero-egress guard (test)" in message


def test_name_lookup_is_refused_before_any_dns_query() -> None:
    with egress.guard(EgressPolicy(reason="test")), pytest.raises(EgressError, match=r"api\.provider\.invalid:443"):
        socket.getaddrinfo("api.provider.invalid", 443)


def test_a_datagram_to_a_remote_address_is_refused() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with egress.guard(EgressPolicy(reason="test")), pytest.raises(EgressError, match=r"203\.0\.113\.9:53"):
        sock.sendto(b"x", ("203.0.113.9", 53))
    sock.close()


def test_loopback_and_unix_sockets_are_allowed(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    unix_server = socket.socket(socket.AF_UNIX)
    unix_server.bind(str(tmp_path / "s.sock"))
    unix_server.listen()
    with egress.guard(EgressPolicy(reason="test")):
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(tmp_path / "s.sock"))
        with tripwire_off():
            sys.audit("socket.getaddrinfo", "localhost", 8000, 0, 0, 0)
            sys.audit("socket.connect", server, ("::1", 8000, 0, 0))
    server.close()
    unix_server.close()


def test_on_premises_hosts_are_allowed_and_no_other() -> None:
    policy = EgressPolicy(reason="test", on_premises=frozenset({"203.0.113.7"}))
    sock = socket.socket()
    with egress.guard(policy), tripwire_off():  # sys.audit: the event alone, no connection is made
        sys.audit("socket.connect", sock, ("203.0.113.7", 8000))
        with pytest.raises(EgressError, match=r"203\.0\.113\.8:8000.*on-premises hosts: 203\.0\.113\.7"):
            sys.audit("socket.connect", sock, ("203.0.113.8", 8000))
    sock.close()


def test_an_on_premises_host_name_allows_the_addresses_it_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(egress, "_addresses_of", lambda host: frozenset({"198.51.100.9"}))
    policy = EgressPolicy(reason="test", on_premises=frozenset({"gpu-box.invalid"}))
    assert policy.allows("gpu-box.invalid") and policy.allows("198.51.100.9")
    assert not policy.allows("198.51.100.10") and not policy.allows("other.invalid")


def test_the_spec_declares_its_on_premises_hosts(tmp_path: Path) -> None:
    models = {
        "vllm": {"backend": "openai", "base_url": "http://203.0.113.7:8000/v1", "model": "m", "on_premises": True},
        "hosted": {"backend": "openai", "base_url": "https://api.provider.invalid/v1", "model": "m"},
    }
    policy = egress.project_policy(load_project(_write_project(tmp_path, models=models)))
    assert policy is not None and policy.on_premises == frozenset({"203.0.113.7"})
    assert "targets.self_hosted_only" in policy.reason
    assert egress.project_policy(load_project(_write_project(tmp_path, self_hosted_only=False))) is None


def test_the_guard_is_off_again_after_its_block_and_restores_the_offline_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    outer = EgressPolicy(reason="outer")
    with egress.guard(outer):
        assert egress.label() == "on"
        assert {k: v for k, v in egress.OFFLINE_SWITCHES.items() if k.startswith(("HF_", "TRANSF"))} == {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
        assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
        with egress.guard(EgressPolicy(reason="inner")):
            assert egress.current().reason == "inner"
        assert egress.current() is outer
    assert not egress.is_on() and egress.label() == "off"
    assert "HF_HUB_OFFLINE" not in os.environ
    assert os.environ["TRANSFORMERS_OFFLINE"] == "0"
    with tripwire_off():
        sys.audit("socket.connect", socket.socket(), ("203.0.113.5", 443))  # the guard off: the hook lets it be


def test_a_remote_endpoint_is_refused_inside_the_backend_naming_the_tunewise_code_path() -> None:
    backend = OpenAIBackend(base_url="https://203.0.113.5/v1", model="m", max_retries=0)
    with egress.guard(EgressPolicy(reason="test")), pytest.raises(EgressError) as raised:
        backend.generate([[{"role": "user", "content": "hi"}]], GenerationConfig(max_new_tokens=4))
    backend.close()
    assert "203.0.113.5:443" in str(raised.value)
    assert "tunewise.models.openai" in str(raised.value)


def test_credentials_in_a_refused_tracking_uri_are_not_printed() -> None:
    uri = "postgresql://user:s3cret@db.invalid:5432/mlflow"
    with pytest.raises(EgressError) as raised:
        egress.check_tracking_uri(uri, EgressPolicy(reason="test"))
    assert "db.invalid:5432/mlflow" in str(raised.value) and "s3cret" not in str(raised.value)
    for local in ("sqlite:////tmp/m.db", "/tmp/mlruns", "file:///tmp/mlruns", "http://127.0.0.1:5000"):
        egress.check_tracking_uri(local, EgressPolicy(reason="test"))


def test_eval_with_a_hosted_candidate_under_self_hosted_only_fails_fast_naming_the_host(tmp_path: Path) -> None:
    project = _write_project(
        tmp_path / "p",
        models={"hosted": {"backend": "openai", "base_url": "https://api.provider.invalid/v1", "model": "m"}},
        candidates=[{"name": "local", "model": "scripted"}, {"name": "cloud", "model": "hosted"}],
    )
    result = runner.invoke(app, ["eval", "-c", str(project), "--no-track"])
    assert result.exit_code == 1, result.output
    assert "api.provider.invalid" in result.output and "'cloud'" in result.output
    assert "models.hosted.base_url" in result.output
    assert not (project / ".tunewise" / "cache").exists()  # refused before the first candidate generated anything
    assert not (project / ".tunewise" / "runs").exists()
    assert not egress.is_on()


def test_eval_with_a_remote_mlflow_uri_under_the_guard_fails_fast_naming_it(tmp_path: Path) -> None:
    project = _write_project(tmp_path / "p", tracking={"uri": "http://mlflow.invalid:5000"})
    result = runner.invoke(app, ["eval", "-c", str(project)])
    assert result.exit_code == 1, result.output
    assert "http://mlflow.invalid:5000" in result.output and "tracking.uri" in result.output
    assert not (project / ".tunewise").exists()


def test_no_egress_refuses_a_remote_mlflow_uri_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _write_project(tmp_path / "p", self_hosted_only=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.invalid:5000")
    result = runner.invoke(app, ["--no-egress", "eval", "-c", str(project)])
    assert result.exit_code == 1, result.output
    assert "http://mlflow.invalid:5000" in result.output and "--no-egress" in result.output
    assert not (project / ".tunewise").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_egress_turns_the_guard_on_for_one_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    project = _write_project(tmp_path / "p", self_hosted_only=False)
    args = ["eval", "-c", str(project), "--no-track", "--out", str(tmp_path / "run")]
    if how == "flag":
        args = ["--no-egress", *args]
    else:
        monkeypatch.setenv(egress.ENV_VAR, "1")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["egress_guard"] is True
    assert not egress.is_on()  # off again once the command returns


def test_an_evaluation_records_whether_the_guard_was_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(egress.ENV_VAR, raising=False)
    import mlflow

    for self_hosted_only, expected in ((True, "on"), (False, "off")):
        root = _write_project(tmp_path / expected, self_hosted_only=self_hosted_only)
        summary = evaluate(load_project(root), progress=False, out=root / "run")
        assert summary.egress_guard is self_hosted_only and not egress.is_on()
        assert f"- zero-egress guard: {expected}\n" in (root / "run" / "report.md").read_text()
        assert f"Zero-egress guard: <b>{expected}</b>" in (root / "run" / "report.html").read_text()
        run = mlflow.MlflowClient(f"sqlite:///{root / '.tunewise' / 'mlflow.db'}").get_run(summary.mlflow_run_id)
        assert run.data.tags[egress.MLFLOW_TAG] == expected


def test_mlflow_telemetry_is_off_unless_the_user_turned_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise import tracking

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    tracking._mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    tracking._mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
