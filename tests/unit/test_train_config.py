"""The training config: unknown keys and bad values are errors naming file, line and key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tunewise.config import TrainSpec, load_train_spec
from tunewise.errors import InputError
from tunewise.train.precision import resolve_precision


def test_train_config_file_top_level_or_under_train(tmp_path):
    (tmp_path / "a.yaml").write_text("rank: 8\nlearning_rate: 0.001\n")
    (tmp_path / "b.yaml").write_text("train:\n  rank: 8\n  target_modules: [q_proj, v_proj]\n")
    assert load_train_spec(tmp_path / "a.yaml").rank == 8
    assert load_train_spec(tmp_path / "b.yaml").target_modules == ["q_proj", "v_proj"]


def test_unknown_key_and_bad_value_name_the_line(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  rank: 8\n  lerning_rate: 0.1\n")
    with pytest.raises(InputError, match=r"c.yaml:3: train.lerning_rate: unknown key \(expected one of: base_model"):
        load_train_spec(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("rank: 0\n")
    with pytest.raises(InputError, match=r"d.yaml:1: rank: .*greater than or equal to 1"):
        load_train_spec(tmp_path / "d.yaml")
    with pytest.raises(InputError, match="not found"):
        load_train_spec(tmp_path / "missing.yaml")


def test_spec_is_frozen_and_precision_resolves():
    spec = TrainSpec()
    with pytest.raises(ValidationError):
        spec.rank = 4  # type: ignore[misc]
    with pytest.raises(ValueError):
        TrainSpec(target_modules=[])
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
