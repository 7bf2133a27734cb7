"""The ``/metrics`` text for a fixed run of events, line for line.

``metrics_golden.txt`` was written by the prometheus_client ``Counter``/``Histogram``
implementation of :class:`~aonode.ops.metrics.NodeMetrics`; whatever keeps the
numbers must expose the same names, labels, types, help texts, buckets and
values, in the same order.  ``_created`` samples carry a wall-clock time, so
only their presence and position are compared.
"""

from __future__ import annotations

import re
from pathlib import Path

from aonode.ops.metrics import LiveSources, NodeMetrics

GOLDEN = Path(__file__).with_name("metrics_golden.txt").read_text()
_CREATED = re.compile(r"^(\S+_created(?:\{.*\})?) \S+$")


def _masked(text: str) -> list[str]:
    return [_CREATED.sub(r"\1 T", line) for line in text.splitlines()]


def run_events(m: NodeMetrics) -> None:
    """Every hook, over bucket edges (exactly on a bound, past the last), several labels."""
    for seconds in (0.0001, 0.0005, 0.003, 0.005, 0.2, 12.0):
        m.verified(seconds)
        m.signed(seconds * 2)
        m.committed(3, seconds)
    m.committed(1, 0.0)
    m.committed(2048, 1.0)
    m.assigned("local_confirmation", True, 0.004)
    m.assigned("local_confirmation", True, None)
    m.assigned("aggressive", False, 0.0125)
    m.assigned("local_confirmation", False, 30.0)
    m.applied(5)
    m.applied(1)
    m.push_delivered(True, {"response": "ok"})
    m.push_delivered(False, {"response": "error"})
    m.push_delivered(False, {})
    m.push_failed("refused")
    m.push_failed("refused")
    m.push_failed("unreachable")
    m.cron_fired("t", True)
    m.cron_fired("t", False)
    pid = "A" * 43
    for path, method, status in (
        (f"/{pid}/schedule", "POST", 200),
        (f"/{pid}/schedule", "POST", 200),
        ("/~scheduler@1.0/schedule", "POST", 400),
        (f"/{pid}~process@1.0/compute", "GET", 200),
        ("/slot/12", "GET", 404),
        ("/what/ever", "BREW", 405),
        ("/metrics", "GET", 200),
    ):
        m.http_request(method, path, status)


def test_the_exposition_of_a_fixed_run_is_unchanged() -> None:
    live = LiveSources(
        queue_depths=lambda: [(3, "p1"), (0, "p2")], workers=lambda: 2, push_jobs=lambda: 1
    )
    m = NodeMetrics("local_confirmation", live)
    empty = _masked(m.exposition().decode())
    run_events(m)
    assert _masked(m.exposition().decode()) == GOLDEN.splitlines()
    # before any event: the node's mode and every push failure reason show as 0
    assert 'aonode_assignments_total{mode="local_confirmation"} 0.0' in empty
    assert 'aonode_push_failed_total{reason="no-route"} 0.0' in empty
    assert not any(line.startswith("aonode_http_requests_total") for line in empty)
