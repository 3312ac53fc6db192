"""Counters and histograms, on prometheus_client (the only module that imports it).

Under `delegauth serve` the workers share PROMETHEUS_MULTIPROC_DIR, so /metrics adds up
every worker's counters; elsewhere (tests, one process) they live in this process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "DecisionTally",
    "count_change",
    "count_decision",
    "count_token",
    "observe_webhook",
    "render",
    "worker_exited",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

_DECISIONS = Counter("delegauth_decisions", "AuthZEN decisions by outcome.", ["outcome"])
_DECISION_SECONDS = Histogram(
    "delegauth_decision_seconds",
    "Time to decide one AuthZEN evaluation.",
    ["outcome"],
    buckets=(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 2.5e-2, 0.1, 1.0),
)
_TOKENS = Counter("delegauth_tokens_issued", "Access tokens issued, by grant type.", ["grant_type"])
_CHANGES = Counter(
    "delegauth_changes", "Invitation and grant operations (audit actions).", ["action"]
)

_WEBHOOKS = Counter(
    "delegauth_webhook_attempts", "Webhook delivery attempts, by outcome.", ["outcome"]
)
_WEBHOOK_LAG = Histogram(
    "delegauth_webhook_delivery_lag_seconds",
    "From an event's commit to its endpoint's 2xx answer (first or later attempt).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 600.0, 3600.0),
)


# The labelled children, looked up once: labels() costs more than the decision itself.
# (Safe across fork: multiprocess values notice a changed pid and open their own file.)
_BY_OUTCOME: dict[bool, tuple[Any, Any]] = {}


def _children(allowed: bool) -> tuple[Any, Any]:
    children = _BY_OUTCOME.get(allowed)
    if children is None:
        outcome = "allow" if allowed else "deny"
        children = (_DECISIONS.labels(outcome), _DECISION_SECONDS.labels(outcome))
        _BY_OUTCOME[allowed] = children
    return children


class DecisionTally:
    """The decisions of one request, written to the metrics once (``observe``).

    Under `delegauth serve` every metric update is a locked write to a shared file: per
    decision, that cost more than a batch's decisions themselves. Each outcome's decisions
    are counted exactly; the histogram gets one observation per decision, all at their
    mean time within the request.
    """

    __slots__ = ("allowed", "allowed_s", "denied", "denied_s")

    def __init__(self) -> None:
        self.allowed = self.denied = 0
        self.allowed_s = self.denied_s = 0.0

    def add(self, allowed: bool, seconds: float) -> None:
        if allowed:
            self.allowed += 1
            self.allowed_s += seconds
        else:
            self.denied += 1
            self.denied_s += seconds

    def add_many(self, allowed: int, denied: int, seconds: float) -> None:
        """``allowed`` and ``denied`` decisions that took ``seconds`` together."""
        if allowed or denied:
            share = seconds / (allowed + denied)
            self.allowed += allowed
            self.allowed_s += share * allowed
            self.denied += denied
            self.denied_s += share * denied

    def observe(self) -> None:
        for allowed, count, seconds in (
            (True, self.allowed, self.allowed_s),
            (False, self.denied, self.denied_s),
        ):
            if count:
                counter, histogram = _children(allowed)
                counter.inc(count)
                _observe_many(histogram, seconds / count, count)


def _observe_many(histogram: Any, amount: float, count: int) -> None:
    """``count`` observations of ``amount`` in two writes (prometheus_client's Histogram
    has no weighted observe: its own observe does the same per call)."""
    histogram._sum.inc(amount * count)
    for bucket, bound in zip(histogram._buckets, histogram._upper_bounds, strict=True):
        if amount <= bound:
            bucket.inc(count)
            break


def count_decision(allowed: bool, seconds: float) -> None:
    """One request's one decision (a single evaluation): what a DecisionTally holding it
    would write, without the tally."""
    counter, histogram = _BY_OUTCOME.get(allowed) or _children(allowed)
    counter.inc()
    _observe_many(histogram, seconds, 1)


def count_token(grant_type: str) -> None:
    _TOKENS.labels(grant_type).inc()


def count_change(action: str) -> None:
    _CHANGES.labels(action).inc()


def observe_webhook(outcome: str, lag_s: float | None = None) -> None:
    """Count a delivery attempt (delivered, retry, failed); a delivered one has its lag."""
    _WEBHOOKS.labels(outcome).inc()
    if lag_s is not None:
        _WEBHOOK_LAG.observe(lag_s)


def worker_exited(pid: int) -> None:
    """Tell the multiprocess store a worker is gone (gunicorn's child_exit hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)


# Values read at scrape time: (name, help, value, labels).
Gauges = Callable[[], Iterator[tuple[str, str, float, dict[str, str]]]]


class _Gauges(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, help_text, value, labels in self._gauges():
            family = GaugeMetricFamily(name, help_text, labels=sorted(labels))
            family.add_metric([labels[k] for k in sorted(labels)], value)
            yield family


def render(gauges: Gauges) -> bytes:
    """The Prometheus text for every worker's counters plus this process's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (_DECISIONS, _DECISION_SECONDS, _TOKENS, _CHANGES, _WEBHOOKS, _WEBHOOK_LAG):
            registry.register(metric)
    registry.register(_Gauges(gauges))
    return generate_latest(registry)
