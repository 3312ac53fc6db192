"""A request's decisions reach the metrics once, and exactly: each outcome counted, and one
histogram observation per decision (at their mean time within the request)."""

from __future__ import annotations

import re

import pytest

from delegauth import metrics


def _value(name: str, labels: str) -> float:
    text = metrics.render(lambda: iter(())).decode()
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_tally_counts_every_decision_once_per_request() -> None:
    seen = {
        "allow": _value("delegauth_decisions_total", 'outcome="allow"'),
        "deny": _value("delegauth_decisions_total", 'outcome="deny"'),
        "count": _value("delegauth_decision_seconds_count", 'outcome="allow"'),
        "sum": _value("delegauth_decision_seconds_sum", 'outcome="allow"'),
        "fast": _value("delegauth_decision_seconds_bucket", 'le="5e-06",outcome="allow"'),
        "slow": _value("delegauth_decision_seconds_bucket", 'le="1e-05",outcome="allow"'),
    }
    tally = metrics.DecisionTally()
    for seconds in (2e-6, 4e-6, 9e-6):  # mean 5e-6: in the 5 µs bucket
        tally.add(True, seconds)
    tally.add(False, 1e-6)
    tally.observe()
    assert _value("delegauth_decisions_total", 'outcome="allow"') == seen["allow"] + 3
    assert _value("delegauth_decisions_total", 'outcome="deny"') == seen["deny"] + 1
    assert _value("delegauth_decision_seconds_count", 'outcome="allow"') == seen["count"] + 3
    total = _value("delegauth_decision_seconds_sum", 'outcome="allow"') - seen["sum"]
    assert abs(total - 15e-6) < 1e-12
    # Buckets are cumulative: all three land at 5 µs, so at 10 µs too.
    assert _value("delegauth_decision_seconds_bucket", 'le="5e-06",outcome="allow"') == (
        seen["fast"] + 3
    )
    assert _value("delegauth_decision_seconds_bucket", 'le="1e-05",outcome="allow"') == (
        seen["slow"] + 3
    )


def test_one_decision_is_counted_as_a_tally_of_one_would_count_it() -> None:
    deny = 'outcome="deny"'
    read = [
        ("delegauth_decisions_total", deny),
        ("delegauth_decision_seconds_count", deny),
        ("delegauth_decision_seconds_sum", deny),
        ("delegauth_decision_seconds_bucket", 'le="2.5e-05",' + deny),
        ("delegauth_decision_seconds_bucket", 'le="1e-05",' + deny),  # below it: untouched
    ]
    before = [_value(name, labels) for name, labels in read]
    metrics.count_decision(False, 2e-5)
    after = [_value(name, labels) for name, labels in read]
    grown = [a - b for a, b in zip(after, before, strict=True)]
    assert grown == pytest.approx([1, 1, 2e-5, 1, 0], abs=1e-12)
