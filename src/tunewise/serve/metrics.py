"""Prometheus metrics of one server: requests, tokens, latency and time to first token per model, queue depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    """The server's own registry (not the process-global one: two servers in one process stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tunewise_requests", "Chat completion requests answered", ["model", "status"], registry=self.registry
        )
        self.tokens = Counter("tunewise_tokens", "Tokens processed", ["model", "kind"], registry=self.registry)
        self.latency = Histogram(
            "tunewise_request_latency_seconds",
            "Time from request to last byte",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "tunewise_time_to_first_token_seconds",
            "Time from request to the first streamed token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("tunewise_requests_in_flight", "Requests being answered", registry=self.registry)
        self.queued = Gauge("tunewise_requests_queued", "Requests waiting for an engine slot", registry=self.registry)
        self.rejected = Counter(
            "tunewise_requests_rejected", "Requests refused before the engine", ["reason"], registry=self.registry
        )
        self.engine_restarts = Gauge(
            "tunewise_engine_restarts", "Times the engine process was restarted", registry=self.registry
        )

    def observe(self, model: str, status: int, latency_s: float, prompt_tokens: int, completion_tokens: int) -> None:
        self.requests.labels(model, str(status)).inc()
        self.latency.labels(model).observe(latency_s)
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
