"""LocalBackend on a tiny random model: batching, ordering, determinism, token counts, constrained JSON."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tunewise.errors import BackendError
from tunewise.models.base import Backend, GenerationConfig
from tunewise.models.local import LocalBackend, directory_sha256

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"enum": ["yes", "no", "maybe"]},
        "ok": {"type": "boolean"},
        # A pattern, not maxLength: xgrammar 0.2.9 lets raw control characters into maxLength strings (invalid JSON).
        "word": {"type": "string", "pattern": "^[a-z]{1,4}$"},
        "n": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["answer", "ok", "word", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def spiky_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with large random weights: its near-uniform logits would make every output the same token,
    and a test that batched equals one-by-one generation could not fail."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = tmp_path_factory.mktemp("spiky-model")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def backend(spiky_model_dir: Path) -> LocalBackend:
    return LocalBackend(spiky_model_dir, name="tiny", device="cpu")


def _conversations() -> list[list[dict[str, str]]]:
    # Different lengths so batches need padding; out of length order so sorting has to be undone.
    texts = ["hello", "TOTAL 12.50 RM CASH " * 4, "yes", "The quick brown fox " * 7, "DATE 25/12/2018", "no maybe"]
    return [[{"role": "system", "content": "Extract."}, {"role": "user", "content": t}] for t in texts]


def test_implements_backend_protocol_and_is_lazy(
    spiky_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path / "cache"))
    backend: Backend = LocalBackend(spiky_model_dir, device="cpu")
    assert backend.self_hosted and backend.name == str(spiky_model_dir)
    assert backend.generate([], GenerationConfig()) == []
    assert backend.identity()["backend"] == "local" and backend.count_tokens("TOTAL 12.50") > 0
    assert backend._model is None  # neither constructing nor the cheap calls may load the model


def test_batched_equals_one_by_one_in_input_order(backend: LocalBackend) -> None:
    conversations = _conversations()
    batched = backend.generate(conversations, GenerationConfig(max_new_tokens=10, batch_size=4))
    single = [backend.generate([c], GenerationConfig(max_new_tokens=10, batch_size=1))[0] for c in conversations]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in single]
    assert len({c.text for c in batched}) > 1, "outputs must depend on the input for this test to mean anything"


def test_padded_batch_prefill_fallback_equals_one_by_one(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models whose cache cannot be merged (sliding-window, hybrid) prefill as one left-padded batch."""
    import tunewise.models.local as local

    conversations = _conversations()
    config = GenerationConfig(max_new_tokens=10, batch_size=4)
    merged = backend.generate(conversations, config)
    monkeypatch.setattr(local, "_prefill_one_by_one", lambda *args: None)
    padded = backend.generate(conversations, config)
    assert [c.text for c in padded] == [c.text for c in merged]


def test_merged_prefill_declines_one_token_prompts(backend: LocalBackend) -> None:
    from tunewise.models.local import _prefill_one_by_one

    model, _ = backend.load()
    assert _prefill_one_by_one(model, [[5], [5, 6, 7]], 3) is None
    merged = _prefill_one_by_one(model, [[5, 6], [5, 6, 7]], 3)
    keys = merged.layers[0].keys  # (batch, heads, positions, head dim): all but each prompt's last token
    assert keys.shape[0] == 2 and keys.shape[2] == 2
    assert not keys[0, :, 0].any() and keys[0, :, 1].any() and keys[1, :, 0].any()  # the shorter prompt, left-padded


def test_batched_tokens_equal_one_by_one_tokens(backend: LocalBackend) -> None:
    """Token for token, not just text: decode can merge differences away."""
    import torch

    conversations = _conversations()
    model, tokenizer = backend.load()
    prompts = [backend._prompt_ids(tokenizer, c) for c in conversations]
    batched = backend.generate(conversations, GenerationConfig(max_new_tokens=8, batch_size=len(conversations)))
    for prompt, completion in zip(prompts, batched, strict=True):
        with torch.inference_mode():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False, pad_token_id=2)
        reference = out[0, len(prompt) :].tolist()
        assert tokenizer.decode(reference, skip_special_tokens=True) == completion.text


def test_deterministic_across_calls(backend: LocalBackend) -> None:
    config = GenerationConfig(max_new_tokens=8, batch_size=3)
    first = backend.generate(_conversations(), config)
    second = backend.generate(_conversations(), config)
    assert [c.text for c in first] == [c.text for c in second]


def test_token_counts_progress_and_max_new_tokens(backend: LocalBackend) -> None:
    conversations = _conversations()
    _, tokenizer = backend.load()
    calls: list[int] = []
    config = GenerationConfig(max_new_tokens=5, batch_size=4)
    completions = backend.generate(conversations, config, progress=calls.append)
    assert calls == [4, 2]
    for conversation, completion in zip(conversations, completions, strict=True):
        templated = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        assert completion.prompt_tokens == len(tokenizer(templated, add_special_tokens=False)["input_ids"])
        assert 1 <= completion.completion_tokens <= 5
        assert completion.finish_reason in ("stop", "length")
        if completion.finish_reason == "length":
            assert completion.completion_tokens == 5
        assert completion.latency_ms > 0


def test_empty_input_and_bad_config(backend: LocalBackend) -> None:
    assert backend.generate([], GenerationConfig()) == []
    with pytest.raises(ValueError):
        backend.generate(_conversations(), GenerationConfig(batch_size=0))


def test_constrained_decoding_yields_schema_valid_json(backend: LocalBackend) -> None:
    conversations = _conversations()
    free = backend.generate(conversations, GenerationConfig(max_new_tokens=40, batch_size=4))
    assert not any(_is_json(c.text) for c in free), "the random model should not write JSON by itself"
    constrained = backend.generate(conversations, GenerationConfig(max_new_tokens=60, batch_size=4, json_schema=SCHEMA))
    for completion in constrained:
        jsonschema.validate(json.loads(completion.text), SCHEMA)
        assert completion.finish_reason == "stop"
    # batched constrained decoding matches one-by-one too (one grammar matcher per row)
    single = backend.generate(conversations[:2], GenerationConfig(max_new_tokens=60, batch_size=1, json_schema=SCHEMA))
    assert [c.text for c in single] == [c.text for c in constrained[:2]]


def test_uncompilable_schema_is_a_value_error(backend: LocalBackend) -> None:
    with pytest.raises(ValueError, match="json_schema"):
        backend.generate(_conversations()[:1], GenerationConfig(max_new_tokens=4, json_schema={"type": "nonsense"}))


def test_identity_hashes_files_and_changes_with_weights(
    spiky_model_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path / "cache"))
    a = LocalBackend(spiky_model_dir, device="cpu").identity()
    assert LocalBackend(spiky_model_dir, name="other", device="cpu").identity() == a
    assert LocalBackend(tiny_model_dir, device="cpu").identity()["model_sha256"] != a["model_sha256"]
    json.dumps(a)
    assert (tmp_path / "cache" / "file-hashes.json").is_file()
    assert a["adapter_sha256"] is None and a["dtype"] == "float32"


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # peft 0.21 itself
def test_adapter_is_applied_and_hashed(
    spiky_model_dir: Path, backend: LocalBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("TUNEWISE_CACHE", str(tmp_path / "cache"))
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(spiky_model_dir), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:  # LoRA B starts at zero: an untouched adapter would change nothing
                parameter.normal_(0, 2.0)
    model.save_pretrained(tmp_path / "adapter")
    adapted = LocalBackend(spiky_model_dir, adapter=tmp_path / "adapter", device="cpu")
    config = GenerationConfig(max_new_tokens=8, batch_size=6)
    assert [c.text for c in adapted.generate(_conversations(), config)] != [
        c.text for c in backend.generate(_conversations(), config)
    ]
    assert adapted.identity()["adapter_sha256"] == directory_sha256(tmp_path / "adapter")
    assert adapted.identity()["model_sha256"] == backend.identity()["model_sha256"]


def test_missing_model_or_adapter_is_a_backend_error(spiky_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="model not found"):
        LocalBackend(tmp_path / "nope").generate(_conversations()[:1], GenerationConfig(max_new_tokens=2))
    with pytest.raises(BackendError, match="adapter"):
        LocalBackend(spiky_model_dir, adapter=tmp_path / "no-adapter").generate(
            _conversations()[:1], GenerationConfig(max_new_tokens=2)
        )


def test_count_tokens_uses_the_tokenizer(backend: LocalBackend) -> None:
    assert backend.count_tokens("") == 0
    assert backend.count_tokens("TOTAL 12.50 RM CASH") > 0


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_answer_nll_equals_the_models_own_loss_on_the_answer_tokens(backend: LocalBackend) -> None:
    import torch

    conversation = [{"role": "user", "content": "Is the fox quick?"}]
    (total, count), (other, _) = backend.answer_nll([conversation, conversation], ["yes it is", "no"])
    model, tokenizer = backend.load()
    prompt = backend._prompt_ids(tokenizer, conversation)
    answer = tokenizer("yes it is", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + answer])
    labels = torch.tensor([[-100] * len(prompt) + answer])
    with torch.no_grad():
        loss = float(model(input_ids=ids, labels=labels).loss)  # mean NLL over the labelled (answer) tokens
    assert count == len(answer) > 1
    assert total / count == pytest.approx(loss, rel=1e-4)
    assert other != pytest.approx(total)
    with pytest.raises(ValueError, match="empty answer"):
        backend.answer_nll([conversation], [""])
