"""``llama-server``, built once from the llama.cpp sources the pinned llama-cpp-python sdist vendors.

There is no wheel of the server; the build takes several minutes on 2 cores, so its result is cached by version and
build flags in ``<cache>/llama.cpp-server/``. The flags are portable: ``-march=native`` builds crash with SIGILL in
the AMX kernels on some virtual machines (see FACTS.md), and the web UI (which would be downloaded) is left out.
``$TUNEWISE_LLAMA_SERVER`` may name an existing ``llama-server`` binary instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tunewise.io.cache import cache_root
from tunewise.llamacpp.sdist import LLAMA_CPP_PYTHON_VERSION, LlamaCppError, extract_vendored, sdist_tarball

SERVER_ENV = "TUNEWISE_LLAMA_SERVER"
PORTABLE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DGGML_AVX2=ON",
    "-DGGML_FMA=ON",
    "-DGGML_F16C=ON",
    "-DGGML_AVX512=ON",
    "-DGGML_AMX_TILE=OFF",
    "-DGGML_AMX_INT8=OFF",
    "-DGGML_AMX_BF16=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
)


def build_id(version: str = LLAMA_CPP_PYTHON_VERSION, flags: tuple[str, ...] = PORTABLE_FLAGS) -> str:
    """``<version>-<hash of the flags>``: a different flag set is a different binary."""
    return f"{version}-{hashlib.sha256(' '.join(flags).encode()).hexdigest()[:12]}"


def cached_server_path(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """Where :func:`llama_server_binary` keeps the binary of ``version`` (it may not be built yet)."""
    return cache_root() / "llama.cpp-server" / build_id(version) / "llama-server"


def llama_server_binary(
    version: str = LLAMA_CPP_PYTHON_VERSION, *, announce: Callable[[str], None] | None = None
) -> Path:
    """The ``llama-server`` to run: ``$TUNEWISE_LLAMA_SERVER``, the cached build, or a build now (minutes, once).

    Several processes asking at once build it once: the others wait on a lock and then find it.

    Args:
        announce: called with one line before a build starts (it takes minutes).

    Raises:
        LlamaCppError: the variable names no executable, there is no C++ toolchain, or the build failed (the end of
            the build log is in the message).
    """
    given = os.environ.get(SERVER_ENV)
    if given:
        if not (Path(given).is_file() and os.access(given, os.X_OK)):
            raise LlamaCppError(f"{SERVER_ENV}={given} is not an executable file")
        return Path(given)
    target = cached_server_path(version)
    if target.is_file():
        return target
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
        if missing:
            raise LlamaCppError(
                f"building llama-server needs {' and '.join(missing)} (Debian: apt-get install cmake g++), "
                f"or set {SERVER_ENV} to an existing llama-server"
            )
        if announce is not None:
            announce(f"building llama-server from llama.cpp (llama-cpp-python {version}'s sources), once: minutes")
        _build(sdist_tarball(version), target)
    return target


def _build(tarball: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="tunewise-llama-build-", dir=target.parent.parent) as scratch:
        source, build = Path(scratch) / "src", Path(scratch) / "build"
        extract_vendored(tarball, source, lambda _: True)
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        jobs = str(max(1, len(os.sched_getaffinity(0))))
        log = Path(scratch) / "build.log"
        with open(log, "w") as out:
            for command in (
                ["cmake", "-S", str(source), "-B", str(build), *generator, *PORTABLE_FLAGS],
                ["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
            ):
                if subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                    tail = log.read_text(errors="replace").splitlines()[-15:]
                    raise LlamaCppError("building llama-server failed:\n" + "\n".join(tail))
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise LlamaCppError(f"the llama.cpp build finished without {built}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.partial")
        shutil.copy2(built, staged)
        os.replace(staged, target)
