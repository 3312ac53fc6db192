"""GET /metrics in the Prometheus text format (prometheus_client).

This is one worker's view: the policy in force, hot-reload outcomes and how far the
change log has been applied. (Multiprocess aggregation across workers comes with the
operations work.)
"""

from __future__ import annotations

from collections.abc import Iterator

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from delegauth.policy.decider import Decider
from delegauth.policy.watcher import PolicyWatcher

__all__ = ["MetricsResource"]


class _PolicyCollector(Collector):
    def __init__(self, decider: Decider, watcher: PolicyWatcher) -> None:
        self._decider = decider
        self._watcher = watcher

    def collect(self) -> Iterator[Metric]:
        status = self._watcher.status
        info = InfoMetricFamily("delegauth_policy", "The policy version in force.")
        info.add_metric([], {"version": self._decider.policy_version})
        yield info
        yield CounterMetricFamily(
            "delegauth_policy_reloads", "Policy changes swapped in.", value=status.reloads
        )
        yield CounterMetricFamily(
            "delegauth_policy_reload_failures",
            "Policy changes refused (the last good policy stayed in force).",
            value=status.failures,
        )
        yield GaugeMetricFamily(
            "delegauth_policy_reload_error",
            "1 while the latest policy change is refused.",
            value=1 if status.last_error else 0,
        )
        yield GaugeMetricFamily(
            "delegauth_changelog_applied_version",
            "The last policy change-log version this process applied.",
            value=self._decider.applied_version,
        )


class MetricsResource:
    def __init__(self, decider: Decider, watcher: PolicyWatcher) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_PolicyCollector(decider, watcher))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self._registry)
