"""`bench --fail-on`: reading threshold expressions and judging a result document with them."""

from __future__ import annotations

from typing import Any

import pytest

from handlesim.bench.thresholds import ThresholdError, evaluate, parse_thresholds


def result(**run: Any) -> dict[str, Any]:
    """A result document shaped like run_bench's, with the measured run's figures given."""
    latency = {"count": 1000, "p50_ms": 0.4, "p90_ms": 0.9, "p99_ms": 3.5, "p99.9_ms": 12.0, "max_ms": 40.0,
               "mean_ms": 0.6}
    figures = {"completed": 1000, "errors": 2, "error_rate": 0.002, "achieved_rate": 1990.0, "goodput": 1986.0,
               "timeouts": 0, "late_sends": 3, "latency_ms": latency, **run}
    return {"run": figures, "baseline": {"latency_ms": {"p99_ms": 0.1}, "error_rate": 0.0}}


def test_conditions_read_with_units() -> None:
    parsed = parse_thresholds("errors>0.001, p99>10ms,p99.9>=0.5s, p50>250us, rate<1900, errors>0.5%, timeouts>0")
    assert [(t.metric, t.op, t.limit) for t in parsed] == [
        ("errors", ">", 0.001), ("p99", ">", 10.0), ("p99.9", ">=", 500.0), ("p50", ">", 0.25),
        ("rate", "<", 1900.0), ("errors", ">", 0.005), ("timeouts", ">", 0.0)]
    assert parsed[1].text == "p99>10ms"


@pytest.mark.parametrize("text, words", [
    ("", "empty"), (",", "empty"), ("p99>10", "needs a unit"), ("latency>10ms", "unknown metric 'latency'"),
    ("p99=10ms", "METRIC OP NUMBER"), ("p99>ten ms", "METRIC OP NUMBER"), ("errors>2", "between 0 and 1"),
    ("rate<10ms", "takes no unit"), ("p99>-1ms", "METRIC OP NUMBER"), ("p99>10ms;errors>0", "METRIC OP NUMBER"),
])
def test_unreadable_expressions_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ThresholdError, match=words):
        parse_thresholds(text)


def test_the_run_fails_when_any_condition_holds() -> None:
    verdict = evaluate(parse_thresholds("errors>0.001,p99>10ms,rate<1900"), result())
    assert not verdict.ok and [t.text for t in verdict.failed] == ["errors>0.001"]
    assert [measured for _, measured, _ in verdict.checked] == [0.002, 3.5, 1990.0]
    assert verdict.lines()[0].split() == ["FAILED", "errors>0.001", "measured", "0.002"]
    passing = evaluate(parse_thresholds("errors>0.01,p99>10ms,p99.9>20ms,rate<1900"), result())
    assert passing.ok and not passing.failed
    assert passing.to_dict()["ok"] is True and len(passing.to_dict()["thresholds"]) == 4


def test_thresholds_judge_the_measured_run_not_the_baseline() -> None:
    assert evaluate(parse_thresholds("p99<1ms"), result()).ok, "3.5 ms is the run's p99; 0.1 ms the baseline's"
    assert not evaluate(parse_thresholds("p99>1ms"), result()).ok


def test_a_run_that_measured_nothing_fails_its_latency_thresholds() -> None:
    empty = result(completed=0, errors=0, error_rate=0.0, latency_ms={"count": 0})
    verdict = evaluate(parse_thresholds("p99>10ms,errors>0.5"), empty)
    assert [t.text for t in verdict.failed] == ["p99>10ms"]
    assert "nothing measured" in verdict.lines()[0]
