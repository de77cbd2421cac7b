"""Grammar-constrained JSON decoding for transformers ``generate()`` with xgrammar.

The schema is used exactly as given. Note that JSON-schema grammars follow the schema's own rules: an object
schema without ``"additionalProperties": false`` lets the model invent keys. We compile in xgrammar's strict mode
(no properties or items beyond those the schema lists), which closes that gap for decoding, but the schema a
validator checks afterwards is still the user's: add ``additionalProperties: false`` to say what you mean.

Compiling a grammar costs milliseconds to a second; the compiled grammar is cached per (tokenizer, vocabulary
size, schema). The logits processor itself is single-use: build a new one for every ``generate()`` call.

Known limits: a grammar cannot make the model *finish* — an unbounded string can run into ``max_new_tokens`` and
leave truncated JSON (``finish_reason == "length"``). And xgrammar 0.2.9 admits raw control characters inside
strings that have ``minLength``/``maxLength`` (strict JSON parsers reject them; ``json.loads(strict=False)`` accepts).

We use our own small processor rather than ``xgrammar.contrib.hf.LogitsProcessor``: that one advances its grammar
matchers inside an ``assert`` (so nothing is constrained under ``python -O``), and masks CUDA logits with a Triton
kernel only (we fall back to xgrammar's torch kernel when Triton is missing).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import weakref
from collections import OrderedDict
from typing import Any

from transformers import LogitsProcessor

_INSTALL_HINT = "constrained JSON decoding needs xgrammar: pip install --no-deps xgrammar apache-tvm-ffi"
_MAX_CACHED_GRAMMARS = 32
_lock = threading.Lock()


class _TokenizerGrammars:
    """One tokenizer's xgrammar compiler and its recently compiled grammars."""

    def __init__(self, compiler: Any) -> None:
        self.compiler = compiler
        self.grammars: OrderedDict[str, Any] = OrderedDict()


# Keyed weakly by tokenizer so a cache entry dies with its tokenizer (and never outlives it under a reused id).
_caches: weakref.WeakKeyDictionary[Any, dict[int, _TokenizerGrammars]] = weakref.WeakKeyDictionary()


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from error
    return xgrammar


def compile_json_schema(tokenizer: Any, schema: dict[str, Any], *, vocab_size: int | None = None) -> Any:
    """Compile ``schema`` to an xgrammar ``CompiledGrammar`` for ``tokenizer`` (cached).

    Args:
        tokenizer: A Hugging Face tokenizer; its ``eos_token_id`` is the stop token.
        schema: A JSON schema (dict). Used unchanged, compiled in strict mode, compact whitespace.
        vocab_size: The model's vocabulary size (width of its logits) when it differs from the tokenizer's.

    Returns:
        The compiled grammar.

    Raises:
        ImportError: xgrammar is not installed (with an install hint).
        ValueError: the schema cannot be compiled.
    """
    xgr = _xgrammar()
    vocab = vocab_size or len(tokenizer)
    key = json.dumps(schema, sort_keys=True)
    with _lock:
        per_vocab = _caches.setdefault(tokenizer, {})
        cache = per_vocab.get(vocab)
        if cache is None:
            info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
            cache = per_vocab[vocab] = _TokenizerGrammars(xgr.GrammarCompiler(info))
        if key in cache.grammars:
            cache.grammars.move_to_end(key)
            return cache.grammars[key]
    try:
        # any_whitespace=False: one compact line. Free whitespace lets a weak model pad forever.
        compiled = cache.compiler.compile_json_schema(schema, any_whitespace=False, strict_mode=True)
    except Exception as error:  # xgrammar raises RuntimeError / its own errors for bad schemas
        raise ValueError(f"json_schema: cannot compile to a grammar: {error}") from error
    with _lock:
        cache.grammars[key] = compiled
        while len(cache.grammars) > _MAX_CACHED_GRAMMARS:
            cache.grammars.popitem(last=False)
    return compiled


def json_schema_logits_processor(
    tokenizer: Any, schema: dict[str, Any], batch_size: int, *, vocab_size: int | None = None
) -> Any:
    """A fresh transformers ``LogitsProcessor`` that constrains every row of a batch to JSON matching ``schema``.

    Args:
        tokenizer: The Hugging Face tokenizer of the model that will generate.
        schema: The JSON schema (see the module docstring about ``additionalProperties``).
        batch_size: Rows in the ``generate()`` call this processor is for (one grammar matcher per row).
        vocab_size: The model's vocabulary size when it differs from ``len(tokenizer)``.

    Returns:
        A :class:`GrammarLogitsProcessor`; use it for exactly one ``generate()`` call.

    Raises:
        ImportError: xgrammar is not installed.
        ValueError: the schema cannot be compiled, or ``batch_size`` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    compiled = compile_json_schema(tokenizer, schema, vocab_size=vocab_size)
    return GrammarLogitsProcessor(compiled, batch_size)


def grammar_admits(tokenizer: Any, schema: dict[str, Any], tokens: list[int], *, vocab_size: int | None = None) -> bool:
    """Whether the schema's grammar accepts ``tokens`` and then the tokenizer's eos (a whole, finished answer)."""
    matcher = _xgrammar().GrammarMatcher(compile_json_schema(tokenizer, schema, vocab_size=vocab_size))
    return (
        all(matcher.accept_token(int(token)) for token in tokens)
        and matcher.accept_token(tokenizer.eos_token_id)
        and matcher.is_terminated()
    )


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks each row's logits to the tokens its grammar allows next; one grammar matcher per batch row.

    On each call after the first, the token generated for each row in the previous step is fed to that row's
    matcher. Rows whose grammar has terminated (the stop token was accepted) are left alone: ``generate()`` pads them.
    """

    def __init__(self, compiled_grammar: Any, batch_size: int) -> None:
        xgr = _xgrammar()
        self._xgr = xgr
        self.vocab_size = compiled_grammar.tokenizer_info.vocab_size
        self.matchers = [xgr.GrammarMatcher(compiled_grammar) for _ in range(batch_size)]
        self.bitmask = xgr.allocate_token_bitmask(batch_size, self.vocab_size)
        self._started = False

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != len(self.matchers):
            raise ValueError(f"this processor is for batches of {len(self.matchers)}, got {input_ids.shape[0]} rows")
        if self._started:
            for row, matcher in enumerate(self.matchers):
                if not matcher.is_terminated():
                    token = int(input_ids[row, -1])
                    if not matcher.accept_token(token):
                        raise RuntimeError(f"row {row}: the grammar rejected token {token} (processor reused?)")
        self._started = True
        active = [row for row, matcher in enumerate(self.matchers) if not matcher.is_terminated()]
        if not active:
            return scores
        for row in active:
            self.matchers[row].fill_next_token_bitmask(self.bitmask, row)
        backend = "auto"
        if scores.device.type == "cuda" and importlib.util.find_spec("triton") is None:
            backend = "torch_native"
        bitmask = self.bitmask if scores.device.type == "cpu" else self.bitmask.to(scores.device)
        self._xgr.apply_token_bitmask_inplace(
            scores, bitmask, vocab_size=self.vocab_size, indices=active, backend=backend
        )
        return scores
