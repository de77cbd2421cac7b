"""llama.cpp's sources, taken from the llama-cpp-python source distribution (which vendors a pinned llama.cpp).

The sdist is downloaded once with pip (no build, no dependencies) and kept in the tunewise cache; the GGUF
converters and the ``llama-server`` build both come from it, so they always match. ``$TUNEWISE_LLAMA_CPP_SDIST``
may point at an already downloaded tarball (air-gapped machines).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from tunewise.errors import TunewiseError
from tunewise.io.atomic import atomic_dir
from tunewise.io.cache import cache_root

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SDIST_ENV = "TUNEWISE_LLAMA_CPP_SDIST"
"""An already downloaded llama-cpp-python sdist tarball (machines without network)."""
VENDOR_PREFIX = ("vendor", "llama.cpp")


class LlamaCppError(TunewiseError):
    """llama.cpp's tools are unavailable or failed: the sources, a converter, the server build or process."""


def download_hint(version: str = LLAMA_CPP_PYTHON_VERSION) -> str:
    return (
        f"on a machine with PyPI access run `pip download llama-cpp-python=={version} --no-deps --no-binary :all:` "
        f"and set {SDIST_ENV}=<path to the .tar.gz>"
    )


def sdist_tarball(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    """The llama-cpp-python sdist of ``version``: ``$TUNEWISE_LLAMA_CPP_SDIST``, the cached copy, or a download.

    Raises:
        LlamaCppError: the variable names no file, or the download failed (the message says how to fix it).
    """
    given = os.environ.get(SDIST_ENV)
    if given:
        if not Path(given).is_file():
            raise LlamaCppError(f"{SDIST_ENV}={given} is not a file")
        return Path(given)
    directory = cache_root() / "llama.cpp-sdist" / version
    found = sorted(directory.glob("llama_cpp_python-*.tar.gz"))
    if found:
        return found[0]
    with tempfile.TemporaryDirectory(prefix="tunewise-sdist-") as download:
        tarball = _download(version, Path(download))
        try:
            with atomic_dir(directory) as tmp:
                os.replace(tarball, tmp / tarball.name)
        except FileExistsError:
            pass  # another process downloaded it meanwhile
    return sorted(directory.glob("llama_cpp_python-*.tar.gz"))[0]


def _download(version: str, directory: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-deps", "--no-binary"]
    command += [":all:", "-d", str(directory), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = sorted(directory.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise LlamaCppError(
            f"llama.cpp's tools come from the llama-cpp-python source distribution, and downloading it failed "
            f"({' / '.join(tail) or 'no file'}). Fix: {download_hint(version)}."
        )
    return found[0]


def extract_vendored(tarball: Path, target: Path, keep: Callable[[str], bool]) -> list[str]:
    """Extract the files of ``vendor/llama.cpp/`` whose relative path passes ``keep`` into ``target``.

    Returns:
        The extracted relative paths.
    """
    with tarfile.open(tarball, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            parts = member.name.split("/", 3)
            if len(parts) < 4 or tuple(parts[1:3]) != VENDOR_PREFIX or not (member.isfile() or member.isdir()):
                continue
            if keep(parts[3]):
                member.name = parts[3]
                members.append(member)
        archive.extractall(target, members=members, filter="data")
    return [m.name for m in members if m.isfile()]
