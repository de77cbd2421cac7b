"""Learning-curve fit, extrapolation with uncertainty, and the cost/ROI model."""

from __future__ import annotations

import math

import pytest

from tunewise.decide.config import EngineeringSpec
from tunewise.decide.cost import estimate_cost
from tunewise.decide.sufficiency import fit_curve, estimate_needed


def curve(n: float) -> float:
    return 0.9 - 2.0 * n**-0.6


def test_fit_recovers_a_known_curve() -> None:
    sizes = [32, 64, 128, 256]
    fit = fit_curve(sizes, [curve(n) for n in sizes])
    assert (fit.a, fit.b, fit.c) == pytest.approx((0.9, 2.0, 0.6), rel=1e-3)
    assert fit.n_for(0.85) == pytest.approx((2.0 / 0.05) ** (1 / 0.6), rel=1e-3)
    assert math.isinf(fit.n_for(0.95))


def test_two_points_assume_the_exponent() -> None:
    fit = fit_curve([32, 64], [0.3, 0.4])
    assert fit.c_assumed and fit.c == 0.5 and fit.b > 0
    assert fit.predict(32) == pytest.approx(0.3) and fit.predict(64) == pytest.approx(0.4)


def test_estimate_has_an_interval_around_the_truth() -> None:
    sizes = [32, 64, 128, 256]
    est = estimate_needed(sizes, [curve(n) for n in sizes], 0.85, eval_n=400, samples=200)
    truth = (2.0 / 0.05) ** (1 / 0.6)
    assert est.status == "ok" and est.n_needed == pytest.approx(truth, rel=0.01)
    assert est.n_low is not None and est.n_high is not None and est.n_low < truth < est.n_high
    assert 0 < est.p_reachable <= 1


def test_degenerate_cases() -> None:
    assert estimate_needed([32], [0.5], 0.8).status == "unknown"
    assert estimate_needed([32, 64], [0.5, 0.85], 0.8).status == "reached"
    flat = estimate_needed([32, 64, 128], [0.30, 0.31, 0.31], 0.8, samples=50)
    assert flat.status == "unreachable" and flat.n_needed is None and "levels off" in flat.reason
    with pytest.raises(ValueError):
        fit_curve([0, 10], [0.1, 0.2])


def test_cost_and_break_even() -> None:
    c = estimate_cost(train_examples=1000, tokens_per_example=400, epochs=3, tokens_per_s=200, gpu_hour_usd=2.0,
                      engineering=EngineeringSpec(), traffic_tokens_per_month=1e9, hosted_usd_per_1m=1.0, self_hosted_usd_per_1m=0.1)
    assert c.train_tokens == 1.2e6 and c.compute_hours == pytest.approx(1.2e6 / 200 / 3600)
    assert c.compute_usd == pytest.approx(c.compute_hours * 2.0)
    assert c.engineering_weeks["total"] == (5, 11) and c.engineering_usd == (20000, 44000)
    assert c.hosted_usd_per_month == 1000 and c.self_hosted_usd_per_month == 100
    saving = 900 - sum(c.refresh_usd_per_month) / 2
    assert c.monthly_saving_usd == pytest.approx(saving)
    assert c.break_even_month == math.ceil((c.compute_usd + 32000) / saving)
    never = estimate_cost(train_examples=10, tokens_per_example=10, epochs=1, tokens_per_s=None, gpu_hour_usd=1.0,
                          engineering=EngineeringSpec(), traffic_tokens_per_month=1e6, hosted_usd_per_1m=1.0, self_hosted_usd_per_1m=0.5)
    assert never.break_even_month is None and never.compute_usd is None and any("throughput" in n for n in never.notes)


def test_steps_per_subset_follow_epochs_with_a_cap() -> None:
    from tunewise.decide.config import SufficiencySpec
    from tunewise.decide.sufficiency_probe import steps_for

    spec = SufficiencySpec(subsets=[8, 32, 512], epochs=1, batch_size=4, max_steps=32)
    assert [steps_for(n, spec) for n in spec.subsets] == [2, 8, 32]


def test_training_unavailable_degrades_to_unknown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tunewise.decide.config import SufficiencySpec
    from tunewise.decide.sufficiency_probe import sufficiency_probe

    def broken(size: int):  # type: ignore[no-untyped-def]
        raise ImportError("No module named 'peft'")

    estimate, points, record = sufficiency_probe(None, SufficiencySpec(subsets=[8, 16]), 0.9, 100, broken, "t")  # type: ignore[arg-type]
    assert estimate.status == "unknown" and "training is not available" in estimate.reason and record.error
    estimate, _, _ = sufficiency_probe(None, SufficiencySpec(subsets=[8, 16]), 0.9, 10, broken, "t")  # type: ignore[arg-type]
    assert estimate.status == "unknown"


def test_default_train_fn_runs_short_lora_runs(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The probe asks tunewise.train for short runs: steps from the subset size, no accumulation, one adapter per size."""
    from types import SimpleNamespace

    import tunewise.train
    from tunewise.decide.config import SufficiencySpec
    from tunewise.decide.sufficiency_probe import default_train_fn

    calls = []

    def fake_train(project, spec, *, subset, run_name, track, progress):  # type: ignore[no-untyped-def]
        calls.append((spec, subset, run_name, track))
        return SimpleNamespace(best_metric=0.5, tokens_per_s=123.0, train_tokens=999, wall_time_s=1.5, mlflow_run_id=None)

    monkeypatch.setattr(tunewise.train, "train", fake_train)
    project = SimpleNamespace(spec=SimpleNamespace())
    run = default_train_fn(project, SufficiencySpec(subsets=[8, 64], max_steps=10, batch_size=4, eval_examples=16), "abc")  # type: ignore[arg-type]
    point = run(64)
    spec, subset, name, track = calls[0]
    assert (subset, name, track) == (64, "decide-abc-n64", False)
    assert (spec.max_steps, spec.micro_batch_size, spec.gradient_accumulation, spec.eval_examples) == (10, 4, 1, 16)
    assert spec.early_stopping_patience is None and spec.eval_every == 10
    assert (point.size, point.metric, point.tokens_per_s) == (64, 0.5, 123.0)
