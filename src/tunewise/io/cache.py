"""Where tunewise keeps what it builds or converts once: converted models, llama.cpp tools, hashes."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TUNEWISE_CACHE`` or ``~/.cache/tunewise``."""
    return Path(os.environ.get("TUNEWISE_CACHE", Path.home() / ".cache" / "tunewise"))
