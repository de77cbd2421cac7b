"""An OpenAI-compatible server as a child process on loopback (``llama-server``, or vLLM): start until healthy, stop.

tunewise never exposes it directly: it listens on 127.0.0.1 at a free port and the tunewise front proxies to it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from tunewise.llamacpp.sdist import LlamaCppError

_PR_SET_PDEATHSIG = 1


class LaunchPlan(Protocol):
    host: str
    port: int

    def argv(self, port: int | None = None) -> list[str]: ...


@dataclass(frozen=True)
class ServerPlan:
    """What a ``llama-server`` process runs: the base GGUF, every LoRA it may apply, and its slots."""

    binary: Path
    model: Path
    loras: tuple[Path, ...] = ()
    """GGUF LoRA files; a request sets their scales (``lora: [{"id": i, "scale": s}, …]``, ids in this order)."""
    parallel: int = 4
    context_per_slot: int = 4096
    threads: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    """0: a free port chosen at start."""
    extra: tuple[str, ...] = field(default_factory=tuple)

    def argv(self, port: int | None = None) -> list[str]:
        """The command line (``port`` overrides the plan's)."""
        threads = self.threads or max(1, len(os.sched_getaffinity(0)))
        argv = [str(self.binary), "--model", str(self.model), "--host", self.host]
        argv += ["--port", str(port if port is not None else self.port)]
        argv += ["--parallel", str(self.parallel), "--ctx-size", str(self.context_per_slot * self.parallel)]
        argv += ["--threads", str(threads), "--threads-http", str(max(2, self.parallel))]
        for lora in self.loras:
            argv += ["--lora", str(lora)]
        if self.loras:
            argv.append("--lora-init-without-apply")  # callers still send every scale: see the llamacpp engine
            # The host-RAM prompt cache matches prompts by tokens, not by LoRA: a request for one adapter could be
            # answered on KV computed with another (or the base). Off whenever adapters are loaded.
            argv += ["--cache-ram", "0"]
        argv += ["--no-webui", "--jinja", "--cont-batching", *self.extra]
        return argv


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the process (thread) that started it dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A child server process started from a plan: its URL, whether it is alive, and how to stop it."""

    def __init__(self, plan: LaunchPlan, *, log_file: Path | None = None, die_with_parent: bool = False) -> None:
        """Describe the process; :meth:`start` launches it.

        Args:
            plan: the command line (a free port is chosen when the plan's is 0).
            log_file: where the process's output goes (appended).
            die_with_parent: kill the child when the process that started it dies, even by SIGKILL (Linux;
                strictly, when the starting *thread* exits, so only for processes started from long-lived threads).
        """
        self.plan = plan
        self.die_with_parent = die_with_parent
        self.port = plan.port or free_port(plan.host)
        self.url = f"http://{plan.host}:{self.port}"
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return Path(self.plan.argv(self.port)[0]).name

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 120.0) -> None:
        """Launch and wait until ``/health`` answers 200.

        Raises:
            LlamaCppError: the process exited or did not become healthy in time (the end of its log is included).
        """
        out = open(self.log_file, "ab") if self.log_file is not None else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                self.plan.argv(self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches tunewise, which drains first, not the engine
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise LlamaCppError(f"{self.name} exited with status {self._process.returncode}{self._log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise LlamaCppError(f"{self.name} did not become healthy within {timeout_s:g} s{self._log_tail()}")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; a no-op when it is not running."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_tail(self) -> str:
        if self.log_file is None or not self.log_file.is_file():
            return ""
        lines = self.log_file.read_text(errors="replace").splitlines()[-10:]
        return ":\n" + "\n".join(lines) if lines else ""
