"""The wait-duration histogram counted in bulk, read back with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.metrics import WaitHistogram


def _samples(hist: WaitHistogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(hist)
    text = generate_latest(registry).decode()
    (family,) = list(text_string_to_metric_families(text))
    assert family.name == "muxscope_wait_duration_us" and family.type == "histogram"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_buckets_are_cumulative_with_le_semantics_per_backend():
    hist = WaitHistogram(bounds=(1, 10, 100))
    hist.add([{"backend": "epoll", "duration_us": v} for v in (0, 1, 2, 10, 11, 5000)])
    hist.add([{"backend": "poll", "duration_us": 7}])
    got = _samples(hist)

    def bucket(backend: str, le: str) -> float:
        return got[("muxscope_wait_duration_us_bucket", (("backend", backend), ("le", le)))]

    # 0 and 1 are <= 1; 2 and 10 are <= 10; 11 <= 100; 5000 only in +Inf
    assert [bucket("epoll", le) for le in ("1.0", "10.0", "100.0", "+Inf")] == [2, 4, 5, 6]
    assert [bucket("poll", le) for le in ("1.0", "10.0", "100.0", "+Inf")] == [0, 1, 1, 1]
    assert got[("muxscope_wait_duration_us_count", (("backend", "epoll"),))] == 6
    assert got[("muxscope_wait_duration_us_sum", (("backend", "epoll"),))] == 5024
