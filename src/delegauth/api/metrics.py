"""GET /metrics in the Prometheus text format: every worker's decision, token and
change counters (delegauth.metrics), plus what this process reads at scrape time — the
policy in force, hot-reload outcomes, change-log lag and the mail outbox depth."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import falcon

from delegauth import metrics
from delegauth.policy.decider import Decider
from delegauth.policy.watcher import PolicyWatcher

__all__ = ["MetricsResource"]


class MetricsResource:
    def __init__(
        self,
        decider: Decider,
        watcher: PolicyWatcher,
        latest_version: Callable[[], int],
        outbox_depth: Callable[[], int],
        webhook_depth: Callable[[], int] = lambda: 0,
    ) -> None:
        self._decider = decider
        self._watcher = watcher
        self._latest = latest_version
        self._outbox = outbox_depth
        self._webhooks = webhook_depth

    def _gauges(self) -> Iterator[tuple[str, str, float, dict[str, str]]]:
        status = self._watcher.status
        yield (
            "delegauth_policy_info",
            "The policy in force (hash of its files): the one this process decides with.",
            1.0,
            {"hash": self._decider.policy_hash},
        )
        yield (
            "delegauth_policy_reloads_total",
            "Policy changes swapped in.",
            float(status.reloads),
            {},
        )
        yield (
            "delegauth_policy_reload_failures_total",
            "Policy changes refused (the last good policy stayed in force).",
            float(status.failures),
            {},
        )
        yield (
            "delegauth_policy_reload_error",
            "1 while the latest policy change is refused.",
            1.0 if status.last_error else 0.0,
            {},
        )
        if status.refused_version is not None:
            yield (
                "delegauth_policy_refused_info",
                "The refused policy change, while it is on disk (it does not decide).",
                1.0,
                {"hash": status.refused_version},
            )
        yield (
            "delegauth_changelog_applied_version",
            "The last policy change-log version this process applied.",
            float(self._decider.applied_version),
            {},
        )
        try:
            lag = max(0, self._latest() - self._decider.applied_version)
            yield (
                "delegauth_changelog_lag",
                "Change-log entries not yet applied here.",
                float(lag),
                {},
            )
            yield (
                "delegauth_mail_outbox_depth",
                "Emails waiting to be sent.",
                float(self._outbox()),
                {},
            )
            yield (
                "delegauth_webhook_queue_depth",
                "Webhook deliveries waiting to be sent (first attempts and retries).",
                float(self._webhooks()),
                {},
            )
        except Exception:  # noqa: BLE001 - a scrape never fails on a database hiccup
            yield (
                "delegauth_database_up",
                "0 when the database did not answer the scrape.",
                0.0,
                {},
            )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = metrics.CONTENT_TYPE
        resp.data = metrics.render(self._gauges)
