"""Prometheus metrics (`muxscope_*`), from the engine's own counters and the event batches."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_KIND = itemgetter("kind")
WAIT_BUCKETS_US = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 250_000, 1_000_000)


class EngineCollector(Collector):
    """Reads counters the engine keeps whether or not anybody watches."""

    def __init__(self, read: Callable[[], dict[str, Any]], dropped: Callable[[], int]) -> None:
        self._read = read
        self._dropped = dropped

    def collect(self) -> Iterator[Any]:
        stats = self._read()
        bytes_total = CounterMetricFamily("muxscope_bytes", "TCP bytes echoed",
                                          labels=["direction"])
        bytes_total.add_metric(["in"], stats["bytes_in"])
        bytes_total.add_metric(["out"], stats["bytes_out"])
        yield bytes_total
        yield GaugeMetricFamily("muxscope_connections", "open TCP connections",
                                value=stats["connections"])
        waits = CounterMetricFamily("muxscope_waits", "wait calls", labels=["backend"])
        for backend, count in stats["waits_by_backend"].items():
            waits.add_metric([backend], count)
        yield waits
        yield CounterMetricFamily("muxscope_engine_events", "events emitted by the engine",
                                  value=stats["events_total"])
        yield GaugeMetricFamily("muxscope_dashboard_dropped_events",
                                "events skipped for the dashboards connected now (sum)",
                                value=self._dropped())


class Metrics:
    """A registry per app (tests build many apps in one process) plus a pump consumer."""

    def __init__(self, read_stats: Callable[[], dict[str, Any]],
                 read_dropped: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(read_stats, read_dropped))
        self.events = Counter("muxscope_events", "events seen by the web layer, by kind",
                              ["kind"], registry=self.registry)
        self.wait_us = Histogram("muxscope_wait_duration_us", "wait call duration (µs)",
                                 ["backend"], buckets=WAIT_BUCKETS_US, registry=self.registry)
        self.backpressure = Counter("muxscope_backpressure_pauses",
                                    "times a connection's reading was paused",
                                    registry=self.registry)
        self.tap_gaps = Counter("muxscope_tap_dropped_events",
                                "events lost between the engine and the web layer",
                                registry=self.registry)
        self._last_seq = 0

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        counts = Tally(map(_KIND, batch))  # C-speed tally: this runs on every batch
        for kind, n in counts.items():
            self.events.labels(kind).inc(n)
        if counts.get("wait"):
            for event in batch:
                if event["kind"] == "wait":
                    self.wait_us.labels(event["backend"]).observe(event["duration_us"])
        if counts.get("backpressure"):
            self.backpressure.inc(sum(1 for e in batch
                                      if e["kind"] == "backpressure" and e["paused"]))
        first, last = batch[0]["seq"], batch[-1]["seq"]
        gap = (first - self._last_seq - 1 if self._last_seq else 0) + (
            last - first + 1 - len(batch))
        if gap > 0:
            self.tap_gaps.inc(gap)
        self._last_seq = last
