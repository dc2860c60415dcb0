"""Prometheus metrics (`muxscope_*`), from the engine's own counters and the event batches."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

_KIND = itemgetter("kind")
# no `*_created` gauges: only the three prometheus_client Counters had them (the collectors'
# counters do not), under the counter's HELP, and in a replay they held its start time
disable_created_metrics()  # type: ignore[no-untyped-call]
WAIT_BUCKETS_US = (1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000, 250_000, 1_000_000)


class WaitHistogram(Collector):
    """`muxscope_wait_duration_us`, by backend, counted in bulk.

    prometheus_client's Histogram takes a lock and walks its buckets in Python on every
    `observe`: at one wait event in four that was most of the pump's time per event. Here a
    batch's waits are tallied into per-bucket counts (`bisect`, one C call each) and the
    cumulative buckets are built only when /metrics is scraped.
    """

    name = "muxscope_wait_duration_us"

    def __init__(self, bounds: tuple[float, ...] = WAIT_BUCKETS_US) -> None:
        self.bounds = bounds
        self._counts: dict[str, list[int]] = {}  # backend -> per bucket, the last is +Inf
        self._sums: dict[str, float] = {}

    def add(self, waits: list[dict[str, Any]]) -> None:
        """Count `wait` events (bucket `le` semantics: the first bound >= the value)."""
        bounds = self.bounds
        for event in waits:
            backend, value = event["backend"], event["duration_us"]
            counts = self._counts.get(backend)
            if counts is None:
                counts = self._counts[backend] = [0] * (len(bounds) + 1)
                self._sums[backend] = 0.0
            counts[bisect_left(bounds, value)] += 1
            self._sums[backend] += value

    def collect(self) -> Iterator[Any]:
        family = HistogramMetricFamily(
            self.name, "wait call duration (µs) of the waits shown (under load a sample: the "
            "observation budget; muxscope_waits_total counts every wait)", labels=["backend"])
        for backend, counts in self._counts.items():
            cumulative, running = [], 0
            for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), counts,
                                    strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric([backend], cumulative, self._sums[backend])
        yield family


class EngineCollector(Collector):
    """Reads counters the engine keeps whether or not anybody watches."""

    def __init__(self, read: Callable[[], dict[str, Any]], dropped: Callable[[], int]) -> None:
        self._read = read
        self._dropped = dropped

    def collect(self) -> Iterator[Any]:
        stats = self._read()
        bytes_total = CounterMetricFamily("muxscope_bytes",
                                          "TCP bytes received (in) and sent back (out)",
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
        udp = stats.get("udp")
        if udp is not None:  # (no UDP listener: --no-udp)
            datagrams = CounterMetricFamily(
                "muxscope_udp_datagrams", "UDP datagrams received, echoed, and dropped by the "
                "kernel for want of buffer space (SO_RXQ_OVFL)", labels=["result"])
            for result in ("received", "echoed", "dropped"):
                datagrams.add_metric([result], udp[result])
            yield datagrams
        yield CounterMetricFamily("muxscope_engine_events",
                                  "events numbered by the engine (its last seq)",
                                  value=stats["events_total"])
        yield GaugeMetricFamily("muxscope_dashboard_dropped_events",
                                "events skipped for the dashboards connected now (sum)",
                                value=self._dropped())


class RecordingCollector(Collector):
    """`muxscope_record_lost_events_total` with --record: a full disk or a writer left behind
    was said on stderr only."""

    def __init__(self, read_lost: Callable[[], int]) -> None:
        self._read_lost = read_lost

    def collect(self) -> Iterator[Any]:
        yield CounterMetricFamily("muxscope_record_lost_events",
                                  "events --record could not write (a seq gap in a file "
                                  "or between two)",
                                  value=self._read_lost())


class Metrics:
    """A registry per app (tests build many apps in one process) plus a pump consumer."""

    def __init__(self, read_stats: Callable[[], dict[str, Any]],
                 read_dropped: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(EngineCollector(read_stats, read_dropped))
        self.events = Counter("muxscope_events", "events seen by the web layer, by kind",
                              ["kind"], registry=self.registry)
        self.wait_us = WaitHistogram()
        self.registry.register(self.wait_us)
        self.backpressure = Counter("muxscope_backpressure_pauses",
                                    "times a connection's reading was paused",
                                    registry=self.registry)
        self.tap_gaps = Counter("muxscope_tap_dropped_events",
                                "seq numbers the web layer never saw: iterations over the "
                                "observation budget, and a full tap",
                                registry=self.registry)
        #: the last seq seen; None before the first batch (a recording's seqs may be <= 0)
        self._last_seq: int | None = None

    def watch_recording(self, read_lost: Callable[[], int]) -> None:
        self.registry.register(RecordingCollector(read_lost))

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        counts = Tally(map(_KIND, batch))  # C-speed tally: this runs on every batch
        for kind, n in counts.items():
            self.events.labels(kind).inc(n)
        if counts.get("wait"):
            self.wait_us.add([event for event in batch if event["kind"] == "wait"])
        if counts.get("backpressure"):
            self.backpressure.inc(sum(1 for e in batch
                                      if e["kind"] == "backpressure" and e["paused"]))
        first, last = batch[0]["seq"], batch[-1]["seq"]
        gap = (first - self._last_seq - 1 if self._last_seq is not None else 0) + (
            last - first + 1 - len(batch))
        if gap > 0:
            self.tap_gaps.inc(gap)
        self._last_seq = last
