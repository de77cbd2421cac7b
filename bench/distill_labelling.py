"""Distillation labelling throughput: ``label_all`` against an OpenAI-compatible teacher on loopback, cold and warm.

The teacher is a small HTTP server in this process (``http.server.ThreadingHTTPServer`` on 127.0.0.1, a free port)
that answers every ``POST /v1/chat/completions`` after a fixed simulated latency (``--latency-ms``) with the label
``card_arrival`` and a ``usage`` block, and counts the requests it receives. ``--n`` distinct synthetic
conversations are labelled through ``OpenAIBackend`` (``max_retries`` 0), with the prediction cache, the journal and
a spend ledger (prices $0.15 / $0.60 per 1M tokens, no caps), at each ``--concurrency``:

- cold: a fresh cache and journal in a new temporary directory; every input is sent (checked against the server's
  counter).
- warm: a new journal file (another run) over the same cache directory, re-opened from disk; nothing may be sent
  (the server's counter must not move, and every input must come from the cache).

Per concurrency: cold and warm inputs/s (wall time of ``label_all`` alone), the warm/cold ratio against the issue's
target (warm: no request sent, >= 100x faster than cold), requests sent cold/warm, and cold throughput relative to
concurrency 1 (or the lowest measured) and to the ideal ``concurrency / latency``. The journal and cache fsync every
write, so the filesystem of the temporary directory (``--tmp-dir``; printed) bounds both passes.

    python bench/distill_labelling.py                                  # ~25 s: 256 inputs, concurrency 1, 8, 32
    python bench/distill_labelling.py --n 128 --concurrency 1,8 --latency-ms 20
    python bench/distill_labelling.py --tmp-dir /dev/shm               # journal and cache on tmpfs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tunewise.distill.journal import Journal
from tunewise.distill.label import LabelJob, LabelRun, label_all
from tunewise.distill.spend import Prices, SpendLedger
from tunewise.eval.cache import PredictionCache
from tunewise.models.base import GenerationConfig
from tunewise.models.openai import OpenAIBackend

LABEL = "card_arrival"
TARGET_WARM_RATIO = 100.0
PRICES = Prices(0.15, 0.6)


class TeacherServer(ThreadingHTTPServer):
    """A fake chat-completions endpoint: a fixed latency, a fixed label, and a count of the requests it got."""

    daemon_threads = True
    request_queue_size = 256  # 32 clients connecting at once must not overflow the listen backlog (SYN retries)

    def __init__(self, latency_s: float) -> None:
        super().__init__(("127.0.0.1", 0), TeacherHandler)
        self.latency_s = latency_s
        self.requests = 0
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def count(self) -> int:
        with self._lock:
            self.requests += 1
            return self.requests


class TeacherHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints (and httpx's pool) expect
    disable_nagle_algorithm = True  # else headers and body, two writes, wait out the client's delayed ACK (~40 ms)
    server: TeacherServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._reply(404, {"error": {"message": f"no route {self.path}"}})
            return
        number = self.server.count()
        messages = json.loads(body)["messages"]
        prompt_tokens = sum(len(m.get("content", "")) for m in messages) // 4 + 8 * len(messages)
        time.sleep(self.server.latency_s)
        self._reply(
            200,
            {
                "id": f"chatcmpl-bench-{number}",
                "object": "chat.completion",
                "model": "bench-teacher",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": LABEL}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 2, "total_tokens": prompt_tokens + 2},
            },
        )

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def teacher(latency_s: float) -> Iterator[TeacherServer]:
    server = TeacherServer(latency_s)
    thread = threading.Thread(target=server.serve_forever, name="bench-teacher", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def make_jobs(n: int) -> list[LabelJob]:
    """``n`` distinct system + user conversations, like a banking-intent classification set."""
    return [
        LabelJob(
            f"ex-{i:06d}",
            [
                {"role": "system", "content": "Classify."},
                {"role": "user", "content": f"message {i}: my card has not arrived yet, what should I do?"},
            ],
        )
        for i in range(n)
    ]


def concurrency_list(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from error
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be >= 1, got {text!r}")
    return levels


def filesystem_of(path: Path) -> str:
    """The filesystem type of ``path``'s mount (Linux; ``?`` elsewhere)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "?"
    resolved, best, kind = str(path.resolve()), "", "?"
    for line in mounts:
        fields = line.split()
        if len(fields) < 3 or len(fields[1]) <= len(best):
            continue
        if resolved == fields[1] or resolved.startswith(fields[1].rstrip("/") + "/"):
            best, kind = fields[1], fields[2]
    return kind


def load_1min() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "?"


@dataclasses.dataclass
class Level:
    concurrency: int
    cold_s: float
    warm_s: float
    warm_open_s: float
    cold_sent: int
    warm_sent: int
    usd: float


def run_level(server: TeacherServer, jobs: list[LabelJob], concurrency: int, tmp_dir: Path | None) -> Level:
    """One cold pass and one warm pass at ``concurrency``, each in its own journal, over one cache directory."""
    config = GenerationConfig(max_new_tokens=16, batch_size=8)
    backend = OpenAIBackend(
        base_url=f"http://127.0.0.1:{server.port}/v1", model="bench-teacher", concurrency=concurrency, max_retries=0
    )
    n = len(jobs)
    try:
        with tempfile.TemporaryDirectory(prefix="tunewise-bench-distill-", dir=tmp_dir) as scratch:
            root = Path(scratch)
            cache_dir = root / "cache"

            def once(run_name: str, cache: PredictionCache) -> tuple[LabelRun, float, int, float]:
                ledger = SpendLedger(PRICES, max_usd=None, max_tokens=None, max_new_tokens=config.max_new_tokens)
                journal = Journal(root / run_name / "journal.jsonl")
                before = server.requests
                start = time.perf_counter()
                run = label_all(
                    backend, jobs, config, journal=journal, cache=cache, ledger=ledger, concurrency=concurrency
                )
                elapsed = time.perf_counter() - start
                if run.failures:
                    first = next(iter(run.failures.items()))
                    raise SystemExit(f"{run_name} @ {concurrency}: {len(run.failures)} failures, e.g. {first}")
                if len(run.completions) != n or any(c.text != LABEL for c in run.completions.values()):
                    raise SystemExit(f"{run_name} @ {concurrency}: {len(run.completions)}/{n} inputs labelled")
                return run, elapsed, server.requests - before, ledger.usd

            cold_cache = PredictionCache(cache_dir, backend.identity(), dataclasses.asdict(config))
            cold, cold_s, cold_sent, usd = once("run-cold", cold_cache)
            assert cold_sent == n and cold.sent == n and cold.cached == 0, (cold_sent, cold.sent, cold.cached)

            start = time.perf_counter()  # another run: the cache is read back from disk
            warm_cache = PredictionCache(cache_dir, backend.identity(), dataclasses.asdict(config))
            warm_open_s = time.perf_counter() - start
            warm, warm_s, warm_sent, warm_usd = once("run-warm", warm_cache)
            assert warm_sent == 0, f"warm pass at concurrency {concurrency} sent {warm_sent} requests"
            assert warm.sent == 0 and warm.cached == n, (warm.sent, warm.cached, warm.resumed)
            assert warm_usd == 0.0, warm_usd
    finally:
        backend.close()
    return Level(concurrency, cold_s, warm_s, warm_open_s, cold_sent, warm_sent, usd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="distinct inputs to label (default 256)")
    parser.add_argument(
        "--concurrency", type=concurrency_list, default=[1, 8, 32], help="requests in flight, comma-separated (1,8,32)"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the teacher's simulated latency (default 50)")
    parser.add_argument(
        "--tmp-dir", type=Path, default=None, help="where the cache and journals go (default: the system temp dir)"
    )
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be >= 1")

    jobs = make_jobs(args.n)
    scratch_fs = filesystem_of(args.tmp_dir or Path(tempfile.gettempdir()))
    load_before = load_1min()
    with teacher(args.latency_ms / 1000) as server:
        levels = [run_level(server, jobs, c, args.tmp_dir) for c in args.concurrency]
        total_requests = server.requests
    load_after = load_1min()

    print(
        f"{args.n} inputs, teacher latency {args.latency_ms:g} ms on loopback, cache + journals on "
        f"{scratch_fs} ({args.tmp_dir or tempfile.gettempdir()}), {os.cpu_count()} CPUs, "
        f"load 1-min {load_before} -> {load_after}"
    )
    base = min(levels, key=lambda level: (level.concurrency != 1, level.concurrency))
    header = (
        f"{'conc':>4}  {'cold in/s':>10}  {'warm in/s':>10}  {'warm/cold':>9}  {'sent c/w':>9}  "
        f"{f'cold vs c={base.concurrency}':>12}  {'ideal in/s':>10}  {'of ideal':>8}  {'>=100x':>6}"
    )
    print(header)
    print("-" * len(header))
    for level in levels:
        cold_rate, warm_rate = args.n / level.cold_s, args.n / level.warm_s
        ideal = level.concurrency / (args.latency_ms / 1000) if args.latency_ms > 0 else float("inf")
        ratio = level.cold_s / level.warm_s
        print(
            f"{level.concurrency:>4}  {cold_rate:>10.1f}  {warm_rate:>10.1f}  {ratio:>8.1f}x  "
            f"{f'{level.cold_sent}/{level.warm_sent}':>9}  {base.cold_s / level.cold_s:>11.2f}x  {ideal:>10.1f}  "
            f"{cold_rate / ideal:>7.0%}  {'yes' if ratio >= TARGET_WARM_RATIO else 'NO':>6}"
        )
    print(
        f"warm passes sent no request (server total {total_requests} = {len(levels)} x {args.n} cold) and answered "
        "every input from the cache"
    )
    opens = ", ".join(f"c={level.concurrency} {level.warm_open_s * 1000:.1f} ms" for level in levels)
    print(f"re-opening the cache for the warm pass (not in warm in/s): {opens}")
    print(f"cold spend per pass: ${levels[0].usd:.6f} at $0.15 / $0.60 per 1M tokens; warm: $0")
    met = all(level.cold_s / level.warm_s >= TARGET_WARM_RATIO for level in levels)
    print(f"target warm >= {TARGET_WARM_RATIO:g}x faster than cold at every concurrency: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
