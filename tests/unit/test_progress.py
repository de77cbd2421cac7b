"""The progress module: when a plain line is written (an injected clock, no sleeping), and what it says."""

from __future__ import annotations

import io

import pytest

from tunewise.errors import InputError
from tunewise.report.progress import (
    ENV_EVERY_S,
    ProgressDisplay,
    StepProgress,
    format_duration,
    format_stats,
    progress_every_s,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(clock: FakeClock, every_s: float | None = 30.0, job: str = "train") -> tuple[ProgressDisplay, io.StringIO]:
    out = io.StringIO()
    return ProgressDisplay(job, interactive=False, every_s=every_s, clock=clock, stream=out), out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_first_update_then_at_most_one_line_per_interval_then_the_last() -> None:
    clock = FakeClock()
    display, out = plain(clock)
    with display:
        steps = display.task("step", 100)
        for t in range(1, 101):  # one step per second
            clock.now = float(t)
            steps.advance(1, {"loss": 1.0 / t})
    written = lines(out)
    # t=1 (first), t=31, 61, 91 (30 s after the previous line), t=100 (last); nothing added on close
    assert [line.split()[2] for line in written] == ["1/100", "31/100", "61/100", "91/100", "100/100"]
    assert written[0] == "train step 1/100 (1.0%) loss 1.0000 eta 1m39s"
    assert written[1] == "train step 31/100 (31.0%) loss 0.0323 eta 1m09s"
    assert written[-1] == "train step 100/100 (100.0%) loss 0.0100 took 1m40s"


def test_a_task_closed_short_of_its_total_writes_its_last_state_once() -> None:
    clock = FakeClock()
    display, out = plain(clock)
    steps = display.start().task("step", 50)
    for t in range(1, 6):
        clock.now = float(t)
        steps.advance(1, {"loss": 0.5})
    assert len(lines(out)) == 1  # only the first update within the interval
    display.close()
    display.close()
    assert lines(out)[-1] == "train step 5/50 (10.0%) loss 0.5000 took 5s"
    assert len(lines(out)) == 2


def test_a_failed_job_writes_no_closing_line() -> None:
    clock = FakeClock()
    display, out = plain(clock)
    with pytest.raises(RuntimeError), display:
        task = display.task("zero-shot", 10)
        task.advance()
        clock.now = 2.0
        task.advance()
        raise RuntimeError("endpoint down")
    assert lines(out) == ["train zero-shot 1/10 (10.0%) eta ?"]


def test_rate_and_eta_count_from_the_first_update_so_a_head_start_is_not_speed() -> None:
    clock = FakeClock()
    display, out = plain(clock, every_s=0, job="eval")
    with display:
        task = display.task("zero-shot", 100, rate_unit="ex")
        clock.now = 1.0
        task.advance(60)  # 60 cached completions at once
        clock.now = 11.0
        task.advance(10)  # then 1 example per second
    first, second = lines(out)
    assert first == "eval zero-shot 60/100 (60.0%) ex/s 60.0 eta 1s"
    assert second == "eval zero-shot 70/100 (70.0%) ex/s 1.0 eta 30s"


def test_stats_merge_so_the_latest_eval_metric_stays_on_later_lines() -> None:
    clock = FakeClock()
    display, out = plain(clock, every_s=0)
    with display:
        steps = display.task("step", 3)
        steps.advance(1, {"loss": 2.0, "eval/f1": 0.25})
        steps.advance(1, {"loss": 1.5})
    assert lines(out)[-1].startswith("train step 2/3 (66.7%) loss 1.5000 eval/f1 0.2500")


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_EVERY_S, raising=False)
    assert progress_every_s() == 30.0
    monkeypatch.setenv(ENV_EVERY_S, "0")
    clock = FakeClock()
    display, out = plain(clock, every_s=None)
    with display:
        task = display.task("step", 5)
        for _ in range(3):
            task.advance()
    assert len(lines(out)) == 3
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(ENV_EVERY_S, bad)
        with pytest.raises(InputError, match=ENV_EVERY_S):
            progress_every_s()


def test_disabled_and_terminal_displays_write_no_plain_lines() -> None:
    for options in ({"enabled": False, "interactive": False}, {"interactive": True}):
        out = io.StringIO()
        with ProgressDisplay("eval", every_s=0, clock=FakeClock(), stream=out, **options) as display:
            display.task("zero-shot", 2).advance(2)
        assert out.getvalue() == ""


def test_without_a_terminal_lines_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressDisplay("eval", every_s=30.0) as display:  # pytest's captured stdout is not a terminal
        display.task("zero-shot", 1).advance()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("eval zero-shot 1/1 (100.0%) took ")


def test_named_steps_show_the_current_step_and_finish_at_the_total() -> None:
    clock = FakeClock()
    display, out = plain(clock, every_s=0, job="prepare")
    with display:
        steps = StepProgress(display, ["load", "split", "write"])
        steps.start("load")
        steps.start("write")
        steps.finish()
    assert lines(out) == [
        "prepare step 0/3 (0.0%) now load eta ?",
        "prepare step 2/3 (66.7%) now write eta ?",
        "prepare step 3/3 (100.0%) now done took 0s",
    ]


def test_skipped_named_steps_show_nothing() -> None:
    display, out = plain(FakeClock(), every_s=0, job="prepare")
    with display:
        StepProgress(display, ["load"]).finish()
    assert out.getvalue() == ""


def test_formats() -> None:
    assert format_stats({"loss": 0.81234, "lr": 9.8e-4, "tok/s": 112.4, "best": "k-shot", "n": 40}) == (
        "loss 0.8123 lr 9.8e-04 tok/s 112 best k-shot n 40"
    )
    assert [format_duration(s) for s in (0.4, 59, 61, 2472, 7500)] == ["0s", "59s", "1m01s", "41m12s", "2h05m"]
