"""Serving under load: ``tunewise serve`` against llama.cpp's own server alone and the transformers engine.

Every target answers the same streamed chat requests (receipts dev texts with the project's instructions, the same
``max_tokens``, temperature 0) sent by the official ``openai`` async client from this process, with 1 and 16
clients at once; each server runs in its own process (the front in a spawned child, as ``tunewise serve`` would).

- ``llamacpp``:     ``llama-server`` alone on the same GGUF, slots = the highest concurrency
- ``front``:        ``tunewise serve`` with the llama.cpp engine (same binary, GGUF, slots, threads and context)
- ``transformers``: ``tunewise serve`` with the in-process transformers engine
- ``structured``:   ``tunewise serve`` (llama.cpp) on a copy of the project that also has a LoRA adapter (random
                    weights, r 16, all linear layers), every request to the adapter with the project's JSON schema
                    enforced (``response_format``); its own server, so no KV cache is shared with base traffic

Each level's requests go in rounds (``--rounds``) in which the targets take turns, a different one first each round,
so load from other processes on a shared machine falls on all of them alike; the 1-minute load average before and
after each level is recorded with the rows.

Per row: decode tokens/s (completion tokens / wall time of the whole load), TTFT and latency p50/p95, and the
median per-stream decode rate (tokens after the first / time after the first). Then the ratios of issue 10:
front / llama.cpp alone at each concurrency (target >= 0.9), front / transformers at the highest (>= 3), and
adapter + schema against the front's base without them (target: at most 5% slower, >= 0.95).

    flock /tmp/tunewise-cpu.lock python bench/serve_load.py      # ~15 min on 2 CPU cores (transformers: most of it)
    python bench/serve_load.py --requests 16 --concurrency 1 16 --engines llamacpp front --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE = "smollm2-135m"
ADAPTER = "bench-lora"
TARGETS = ("llamacpp", "front", "transformers", "structured")
MAX_RETRIES = 3


@dataclass
class Outcome:
    """One streamed request, timed from the client."""

    ttft_s: float
    latency_s: float
    tokens: int
    decode_s: float
    """From the first content chunk to the last."""
    text: str
    retries: int = 0
    """Attempts refused before any answer (the connection closed with no response), sent again at once."""


async def one_request(client: Any, model: str, messages: list[dict[str, str]], max_tokens: int, extra: dict) -> Outcome:
    """One streamed chat completion; times count from the first attempt."""
    from openai import APIConnectionError

    started = time.perf_counter()
    for retries in range(MAX_RETRIES + 1):
        first = last = None
        pieces: list[str] = []
        usage_tokens = None
        try:
            stream = await client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
        except APIConnectionError:
            # llama-server alone drops ~1 in 10 streamed requests on a reused keep-alive connection from the
            # openai client (httpx2), with no response: sent again, and counted
            if retries == MAX_RETRIES:
                raise
            continue
        async for chunk in stream:
            if chunk.usage is not None:
                usage_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                if choice.delta.content:
                    last = time.perf_counter()
                    first = first or last
                    pieces.append(choice.delta.content)
        break
    ended = time.perf_counter()
    first, last = first or ended, last or ended
    tokens = usage_tokens if usage_tokens is not None else len(pieces)
    return Outcome(first - started, ended - started, tokens, last - first, "".join(pieces), retries)


async def run_load(
    base_url: str,
    model: str | list[str],
    prompts: list[list[dict[str, str]]],
    concurrency: int,
    max_tokens: int,
    extra: dict,
) -> tuple[list[Outcome], float]:
    """Send every prompt with ``concurrency`` clients pulling from one queue; the outcomes and the wall time.

    ``model``: one name, or several that the requests take in turn (request ``i`` goes to ``model[i % len]``).
    """
    models = [model] if isinstance(model, str) else model
    from openai import AsyncOpenAI

    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(prompts)):
        queue.put_nowait(index)
    outcomes: list[Outcome | None] = [None] * len(prompts)
    async with AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=900) as client:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                name = models[index % len(models)]
                outcomes[index] = await one_request(client, name, prompts[index], max_tokens, extra)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return [o for o in outcomes if o is not None], wall


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low = math.floor(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summarize(outcomes: list[Outcome], wall: float) -> dict[str, float]:
    tokens = sum(o.tokens for o in outcomes)
    rates = [(o.tokens - 1) / o.decode_s for o in outcomes if o.tokens > 1 and o.decode_s > 0]
    return {
        "requests": len(outcomes),
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "tokens_per_s": round(tokens / wall, 2),
        "ttft_p50_ms": round(percentile([o.ttft_s for o in outcomes], 0.5) * 1000, 1),
        "ttft_p95_ms": round(percentile([o.ttft_s for o in outcomes], 0.95) * 1000, 1),
        "latency_p50_ms": round(percentile([o.latency_s for o in outcomes], 0.5) * 1000, 1),
        "latency_p95_ms": round(percentile([o.latency_s for o in outcomes], 0.95) * 1000, 1),
        "stream_decode_tok_s_p50": round(statistics.median(rates), 2) if rates else 0.0,
        "retries": sum(o.retries for o in outcomes),
    }


# -- projects and adapters (also used by gpu_serve.py) ------------------------------------------------------------


def copy_project(source: Path, destination: Path) -> Any:
    """A copy of a project directory without its ``.tunewise`` state, loaded: nothing is written into ``source``."""
    from tunewise.config import load_project

    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".tunewise", "__pycache__"))
    return load_project(destination)


def add_adapters(project: Any, names: list[str], *, rank: int = 16, base: str = BASE, weights: bool = True) -> None:
    """Write LoRA adapters where the server finds them (``.tunewise/adapters/<name>`` with ``metadata.json``).

    ``weights``: random PEFT adapters (``init_lora_weights=False``, so they change the outputs) on all linear
    layers; without, only ``adapter_config.json`` (enough to plan a launch, not to load).
    """
    root = project.state_dir / "adapters"
    model = None
    if weights:
        import torch

        from tunewise.models.loading import load_model

        model, _ = load_model(base, device="cpu", dtype=torch.float32)
    for index, name in enumerate(names):
        directory = root / name
        if model is not None:
            import torch
            from peft import LoraConfig, get_peft_model

            torch.manual_seed(index)
            config = LoraConfig(
                r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM"
            )
            peft_model = get_peft_model(model, config)
            peft_model.save_pretrained(directory)
            model = peft_model.unload()  # the bare base again, for the next adapter
        else:
            directory.mkdir(parents=True, exist_ok=True)
            config = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank, "target_modules": "all-linear"}
            (directory / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": base}))
        (directory / "metadata.json").write_text(json.dumps({"base_model": base}), encoding="utf-8")


# -- servers ------------------------------------------------------------------------------------------------------


def _serve_child(project_dir: str, overrides: dict[str, Any], conn: Any) -> None:
    """In a spawned process: ``start_server`` and report its base URL, then serve until told to stop."""
    from tunewise.config import load_project
    from tunewise.serve import start_server

    try:
        server = start_server(load_project(project_dir), port=0, **overrides)
    except BaseException as error:  # reported to the parent, which raises it
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ok", server.base_url))
    try:
        with contextlib.suppress(EOFError):
            conn.recv()
    finally:
        server.stop()


@contextlib.contextmanager
def tunewise_server(project_dir: Path, **overrides: Any) -> Iterator[str]:
    """``tunewise serve`` in a child process; yields the base URL for the openai client."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_child, args=(str(project_dir), overrides, child))
    process.start()
    try:
        if not parent.poll(900):
            raise SystemExit(f"tunewise serve {overrides} did not start within 900 s")
        status, value = parent.recv()
        if status != "ok":
            raise SystemExit(f"tunewise serve {overrides} failed: {value}")
        yield value
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(90)
        if process.is_alive():
            process.terminate()
            process.join(10)


@contextlib.contextmanager
def llama_server_alone(parallel: int, log_file: Path) -> Iterator[str]:
    from tunewise.llamacpp import ServerPlan, ServerProcess, llama_server_binary
    from tunewise.models.gguf_files import base_gguf

    process = ServerProcess(
        ServerPlan(binary=llama_server_binary(), model=base_gguf(BASE), parallel=parallel), log_file=log_file
    )
    process.start(120)
    try:
        yield f"{process.url}/v1"
    finally:
        process.stop()


# -- the run ------------------------------------------------------------------------------------------------------


def rows_for(targets: list[str], urls: dict[str, str], schema: dict[str, Any]) -> list[tuple[str, str, str, dict]]:
    """(row name, base URL, model, extra request fields) for each row to measure."""
    response_format = {"type": "json_schema", "json_schema": {"name": "receipt", "schema": schema, "strict": True}}
    rows = []
    for target in targets:
        if target == "structured":
            rows.append(("front adapter+schema", urls[target], ADAPTER, {"response_format": response_format}))
        else:
            rows.append((target, urls[target], BASE, {}))
    return rows


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from tunewise.examples import load_examples

    plain = copy_project(args.project, tmp / "plain")
    examples = load_examples(plain, plain.split_path("dev"))
    conversations = [list(e.messages) for e in examples]
    warmup, pool = conversations[-1], conversations[:-1]
    parallel = max(args.concurrency)
    results: dict[str, Any] = {
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "parallel": parallel,
        "concurrency": args.concurrency,
        "rows": [],
    }
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for target in args.engines:  # started one after the other, then left idle while the others are measured
            print(f"starting {target}...", flush=True)
            if target == "llamacpp":
                urls[target] = stack.enter_context(llama_server_alone(parallel, tmp / "llama-server.log"))
            elif target == "structured":
                with_adapter = copy_project(args.project, tmp / "with-adapter")
                add_adapters(with_adapter, [ADAPTER])
                urls[target] = stack.enter_context(
                    tunewise_server(with_adapter.root, engine="llamacpp", parallel=parallel)
                )
            else:
                engine = "llamacpp" if target == "front" else "transformers"
                urls[target] = stack.enter_context(tunewise_server(plain.root, engine=engine, parallel=parallel))
        rows = rows_for(args.engines, urls, plain.output_schema or {"type": "object"})
        for _, url, model, extra in rows:
            asyncio.run(run_load(url, model, [warmup], 1, 8, extra))
        for level_index, concurrency in enumerate(args.concurrency):
            # fresh prompts per level (no prompt-cache hits from the level before), the same ones for every row
            prompts = [pool[(level_index * args.requests + i) % len(pool)] for i in range(args.requests)]
            load_before = os.getloadavg()[0]
            measured = run_level(rows, prompts, concurrency, args, tmp)
            for name, (outcomes, wall) in measured.items():
                row = {"target": name, "clients": concurrency, **summarize(outcomes, wall)}
                if name == "front adapter+schema":
                    row["json_valid"] = sum(_parses(o.text) for o in outcomes)
                row["load_avg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                results["rows"].append(row)
                print(_format_row(row), flush=True)
            if "front" in measured and "llamacpp" in measured:
                pairs = zip(measured["front"][0], measured["llamacpp"][0], strict=True)
                results.setdefault("front_llamacpp_same_outputs", {})[str(concurrency)] = sum(
                    a.text == b.text for a, b in pairs
                )
    results["ratios"] = ratios(results["rows"], args.concurrency)
    return results


def run_level(
    rows: list[tuple[str, str, str, dict]],
    prompts: list[list[dict[str, str]]],
    concurrency: int,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, tuple[list[Outcome], float]]:
    """Every row's outcomes (in prompt order) and summed wall time for one concurrency level.

    The prompts go in rounds (``--rounds``, each at least ``concurrency`` long), and each round starts with the
    next row: on a shared machine, load that comes and goes then falls on every row alike.
    """
    size = max(concurrency, math.ceil(len(prompts) / args.rounds))
    measured: dict[str, tuple[list[Outcome], float]] = {name: ([], 0.0) for name, *_ in rows}
    for index, start in enumerate(range(0, len(prompts), size)):
        chunk = prompts[start : start + size]
        for name, url, model, extra in rows[index % len(rows) :] + rows[: index % len(rows)]:
            try:
                outcomes, wall = asyncio.run(run_load(url, model, chunk, concurrency, args.max_tokens, extra))
            except Exception as error:
                raise SystemExit(f"{name} with {concurrency} clients failed: {error!r}{_log_tails(tmp)}") from error
            done, total = measured[name]
            measured[name] = (done + outcomes, total + wall)
    return measured


def _log_tails(tmp: Path, lines: int = 15) -> str:
    """The end of every server log under ``tmp`` (llama-server alone, each front's engine), to say why one failed."""
    out = ""
    for log in sorted(tmp.rglob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out += f"\n--- {log.relative_to(tmp)}\n" + "\n".join(tail)
    return out


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def ratios(rows: list[dict[str, Any]], levels: list[int]) -> dict[str, float]:
    by = {(r["target"], r["clients"]): r for r in rows}
    out: dict[str, float] = {}

    def ratio(key: str, a: str, b: str, level: int, field: str = "tokens_per_s") -> None:
        if (a, level) in by and (b, level) in by and by[(b, level)][field]:
            out[key] = round(by[(a, level)][field] / by[(b, level)][field], 3)

    for level in levels:
        ratio(f"front/llamacpp@{level}", "front", "llamacpp", level)
        ratio(f"adapter+schema/front@{level}", "front adapter+schema", "front", level)
        ratio(
            f"adapter+schema/front@{level} (stream decode)",
            "front adapter+schema",
            "front",
            level,
            "stream_decode_tok_s_p50",
        )
    ratio(f"front/transformers@{max(levels)}", "front", "transformers", max(levels))
    return out


HEADER = (
    f"{'target':<27}{'clients':>8}{'req':>5}{'tok/s':>9}{'ttft50 ms':>10}{'ttft95 ms':>10}{'lat50 ms':>10}"
    f"{'lat95 ms':>10}{'stream tok/s':>14}"
)


def _format_row(row: dict[str, Any]) -> str:
    return (
        f"{row['target']:<27}{row['clients']:>8}{row['requests']:>5}{row['tokens_per_s']:>9.1f}"
        f"{row['ttft_p50_ms']:>10.0f}{row['ttft_p95_ms']:>10.0f}{row['latency_p50_ms']:>10.0f}"
        f"{row['latency_p95_ms']:>10.0f}{row['stream_decode_tok_s_p50']:>14.1f}"
        + (f"   json {row['json_valid']}/{row['requests']}" if "json_valid" in row else "")
        + (f"   {row['retries']} retried" if row.get("retries") else "")
    )


TARGET_RATIOS = {"front/llamacpp": 0.9, "front/transformers": 3.0, "adapter+schema/front": 0.95}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=ROOT / "examples" / "receipts", help="copied, never written")
    parser.add_argument("--requests", type=int, default=32, help="requests per row and concurrency level (default 32)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="clients at once (default 1 16)")
    parser.add_argument("--engines", nargs="+", choices=TARGETS, default=list(TARGETS), help="targets to measure")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per level, rows taking turns (default 4)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tunewise-serve-bench-") as tmp:
        print(HEADER)
        results = measure(args, Path(tmp))
    print()
    print(HEADER)
    for row in results["rows"]:
        print(_format_row(row))
    print()
    for key, value in results["ratios"].items():
        target = next((t for prefix, t in TARGET_RATIOS.items() if key.startswith(prefix)), None)
        verdict = "" if target is None else f"  (target >= {target}: {'met' if value >= target else 'NOT met'})"
        print(f"{key:<45}{value:>7.3f}{verdict}")
    if "front_llamacpp_same_outputs" in results:
        print(f"front == llamacpp outputs (of {args.requests}): {results['front_llamacpp_same_outputs']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
