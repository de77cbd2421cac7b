"""Everything one running server holds: its spec, models, engine, log, keys, limits and metrics."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from tunewise.config import Project, ServeSpec
from tunewise.serve.catalog import Catalog, ServedModel
from tunewise.serve.engines import Engine
from tunewise.serve.keys import ApiKeys
from tunewise.serve.metrics import ServerMetrics
from tunewise.serve.parity import ServeParity
from tunewise.serve.ratelimit import ConcurrencyGate, RateLimiter
from tunewise.serve.requestlog import RequestLog


@dataclass
class ServerState:
    project: Project
    spec: ServeSpec
    catalog: Catalog
    engine: Engine
    log: RequestLog | None
    keys: ApiKeys | None
    """``None``: no key is required (loopback, ``require_api_key`` off)."""
    limiter: RateLimiter
    gate: ConcurrencyGate
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    draining: bool = False
    check_examples: int = 0
    """> 0: serve an adapter only once its task metric through the server matches the in-process one on this many
    dev examples (``tunewise serve --check N``)."""
    check_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    """The bearer token of the parity check's own requests, which may address adapters still being checked."""
    verdicts: dict[str, ServeParity] = field(default_factory=dict)
    """Adapter version -> its parity check."""
    base_url: str = ""

    def refused(self, model: ServedModel) -> ServeParity | None:
        """The failed check that keeps ``model`` from being served, if any."""
        verdict = self.verdicts.get(model.version)
        return verdict if verdict is not None and not verdict.passed else None

    def pending(self, model: ServedModel) -> bool:
        """Whether ``model`` waits for its parity check."""
        return self.check_examples > 0 and model.adapter_dir is not None and model.version not in self.verdicts


def serve_dir(project: Project) -> Path:
    """``.tunewise/serve`` of the project: the request log, the keys, the engine's log."""
    return project.state_dir / "serve"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
