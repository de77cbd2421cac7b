"""The ``llama-server`` command line tunewise runs."""

from __future__ import annotations

from pathlib import Path

from tunewise.llamacpp.server import ServerPlan


def test_adapters_turn_off_the_prompt_cache_that_ignores_loras() -> None:
    base = ServerPlan(binary=Path("llama-server"), model=Path("m.gguf"), parallel=2, context_per_slot=1024)
    argv = base.argv(8080)
    assert argv[argv.index("--ctx-size") + 1] == "2048" and argv[argv.index("--port") + 1] == "8080"
    assert "--lora" not in argv and "--cache-ram" not in argv
    tuned = ServerPlan(binary=Path("llama-server"), model=Path("m.gguf"), loras=(Path("a.gguf"), Path("b.gguf")))
    argv = tuned.argv(8080)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--lora"] == ["a.gguf", "b.gguf"]
    # llama.cpp's host-RAM prompt cache matches by tokens only: with adapters it could hand one model's KV to another
    assert argv[argv.index("--cache-ram") + 1] == "0"
