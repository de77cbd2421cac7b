"""The cost of the persona consistency eval: turn-by-turn conversations on the embedded model (llama.cpp).

Real PersonaChat dev dialogues (``../shared/data/personachat``) are replayed for ``--turns`` assistant turns with the
default probes at turns 1, 5, 10, ... (each probe a branch off the conversation), through ``roll_out`` — the code
``tunewise persona`` runs — on the embedded SmolLM2-135M served by ``llama-server`` (``--parallel`` slots, the
conversations of one wave decoded together). Two settings, measured in the same run on the same conversations:

- ``cached``: what tunewise does: every request extends the prompt its slot already holds, so llama.cpp processes only
  the new turn (``cache_prompt``, on by default in llama-server);
- ``uncached``: the peer, ``cache_prompt: false`` on every request: each turn re-processes the whole conversation.

Printed per setting: seconds per conversation, prompt tokens processed per conversation (the server's own count of
tokens it had to evaluate, ``timings.prompt_n``), decode tokens/s; then the cached/uncached speed-up and the projected
wall time of the full eval (``--full-conversations`` x ``--turns``, per candidate). Both runs generate greedily, so
their answers must be identical (checked and printed).

    python bench/persona_rollout.py                          # ~5 min on 2 cores: 8 conversations x 10 turns
    python bench/persona_rollout.py --conversations 4 --turns 30 --parallel 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tunewise.config import PersonaSpec, project_from_dict
from tunewise.examples import load_examples, spread_order
from tunewise.models.base import GenerationConfig
from tunewise.models.llamacpp import LlamaCppBackend
from tunewise.persona.rollout import RolloutPlan, roll_out
from tunewise.persona.run import CONTEXT_TOKENS
from tunewise.persona.script import build_scripts
from tunewise.records import Message

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "personachat"
INSTRUCTIONS = "You are chatting with someone you have just met. Stay in character as the person described below."


class CountingBackend(LlamaCppBackend):
    """The llama.cpp backend, counting the prompt tokens the server evaluated; ``cache_prompt`` switchable."""

    def __init__(self, *args: Any, cache_prompt: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_prompt = cache_prompt
        self.evaluated = 0
        self.decoded = 0
        self.decode_ms = 0.0

    def payload(self, conversation: list[Message], config: GenerationConfig) -> dict[str, Any]:
        return {**super().payload(conversation, config), "cache_prompt": self.cache_prompt}

    def _post(self, server: Any, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        body = super()._post(server, route, payload)
        timings = body.get("timings") or {}
        self.evaluated += int(timings.get("prompt_n", 0))
        self.decoded += int(timings.get("predicted_n", 0))
        self.decode_ms += float(timings.get("predicted_ms", 0.0))
        return body


def main() -> None:
    parser = argparse.ArgumentParser(prog="persona_rollout.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=8)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=4, help="llama-server slots = conversations per wave")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--full-conversations", type=int, default=48, help="the eval size the projection is for")
    parser.add_argument("--full-turns", type=int, default=30)
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"needs {DATA}")

    root = Path(tempfile.mkdtemp(prefix="tunewise-bench-persona-"))
    project = project_from_dict(
        {
            "name": "bench",
            "task": {"kind": "chat", "instructions": INSTRUCTIONS},
            "data": {"dev": str(DATA / "dev.jsonl")},
        },
        root,
    )
    examples = spread_order(load_examples(project, DATA / "dev.jsonl"))[: args.conversations]
    probe_turns = [t for t in PersonaSpec().probe_turns if t <= args.turns] or [args.turns]
    scripts = build_scripts(examples, args.turns)
    plan = RolloutPlan(args.turns, probe_turns, list(PersonaSpec().probes), args.max_new_tokens, CONTEXT_TOKENS)
    print(
        f"{len(scripts)} conversations x {args.turns} turns, probes at {probe_turns} "
        f"({len(plan.probes)} each), {args.parallel} slots, max_new_tokens {args.max_new_tokens}"
    )
    answers: dict[str, list[list[str]]] = {}
    seconds: dict[str, float] = {}
    for setting in ("cached", "uncached"):
        backend = CountingBackend(
            "smollm2-135m", parallel=args.parallel, context_per_slot=CONTEXT_TOKENS, cache_prompt=setting == "cached"
        )
        backend.count_tokens("warm up")  # start the server outside the timed part
        start = time.perf_counter()
        transcripts = roll_out(backend, scripts, plan, batch_size=args.parallel, store=root / f"{setting}.jsonl")
        seconds[setting] = time.perf_counter() - start
        backend.close()
        answers[setting] = [t.answers for t in transcripts]
        decode_rate = backend.decoded / (backend.decode_ms / 1000) if backend.decode_ms else float("nan")
        print(
            json.dumps(
                {
                    "setting": setting,
                    "s_per_conversation": round(seconds[setting] / len(scripts), 2),
                    "prompt_tokens_evaluated_per_conversation": round(backend.evaluated / len(scripts)),
                    "tokens_generated_per_conversation": round(backend.decoded / len(scripts)),
                    "decode_tok_per_s_per_request": round(decode_rate, 1),
                }
            )
        )
    speedup = seconds["uncached"] / seconds["cached"]
    same = answers["cached"] == answers["uncached"]
    per_conversation = seconds["cached"] / len(scripts) * args.full_turns / args.turns
    print(f"cached vs uncached: {speedup:.2f}x faster; identical answers: {same}")
    print(
        f"projected: {args.full_conversations} conversations x {args.full_turns} turns ≈ "
        f"{per_conversation * args.full_conversations / 60:.0f} min per candidate (later turns cost more)"
    )


if __name__ == "__main__":
    main()
