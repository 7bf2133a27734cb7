"""Prometheus metrics of one node, served at ``GET /metrics``.

Each :class:`NodeMetrics` owns its own ``CollectorRegistry`` (never the
process-wide default), so several nodes in one process (the tests) do not
collide.  It is an :class:`~aonode.instrument.Instrument`: the node registers
it once with its :class:`~aonode.instrument.Instruments`, which every part
reports to, and hands it :class:`LiveSources` for the gauges read at scrape
time.  Nothing else imports ``prometheus_client``, and this module imports
no node.

Every label set is bounded: modes, operations and results are fixed words;
HTTP routes are templates (ids and numbers replaced, unknown words folded
into ``{other}``, and at most :data:`MAX_ROUTES` distinct templates, after
which new ones count as ``{other}``); per-process queue depth is exported
for the :data:`TOP_QUEUES` deepest queues only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from aonode.instrument import Instrument
from aonode.push.failures import REASONS

CONTENT_TYPE = CONTENT_TYPE_LATEST
TOP_QUEUES = 10
MAX_ROUTES = 200
MAX_DEPTH = 5
_LABELS_KEPT = 4096  # paths whose route label is remembered
_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"})
_DEVICES = frozenset(
    {
        "scheduler@1.0",
        "process@1.0",
        "meta@1.0",
        "message@1.0",
        "cron@1.0",
        "push@1.0",
        "relay@1.0",
        "json@1.0",
        "dashboard",
    }
)
# Literal path words of the node's routes (http/app.py and the routes beside it).
_WORDS = frozenset(
    {
        "schedule",
        "slot",
        "current",
        "status",
        "location",
        "info",
        "address",
        "push",
        "compute",
        "now",
        "snapshot",
        "results",
        "result",
        "dryrun",
        "store",
        "metrics",
        "state",
        "timestamp",
        "latest",
        "processes",
        "once",
        "every",
        "stop",
        "tasks",
        "as",
        "favicon.ico",
    }
)
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _segment(seg: str) -> str:
    if _ID.match(seg):
        return "{id}"
    if seg.isdigit():
        return "{n}"
    if "~" in seg:
        left, _, device = seg.partition("~")
        head = "{id}" if _ID.match(left) else ("" if not left else "{other}")
        return f"{head}~{device if device in _DEVICES else '{device}'}"
    key, eq, _ = seg.partition("=")
    if eq:
        return f"{key}={{v}}" if key in _WORDS else "{other}"
    return seg if seg in _WORDS else "{other}"


def route_template(path: str) -> str:
    """``/{id}~process@1.0/compute`` for ``/Xy…43 chars…~process@1.0/compute``."""
    parts = [p for p in path.split("/") if p]
    out = [_segment(p) for p in parts[:MAX_DEPTH]]
    if len(parts) > MAX_DEPTH:
        out.append("…")
    return "/" + "/".join(out)


@dataclass(frozen=True, slots=True)
class LiveSources:
    """What the gauges read at scrape time (the node wires its parts in)."""

    queue_depths: Callable[[], list[tuple[int, str]]]  # (depth, process) per running scheduler
    workers: Callable[[], int]  # process workers loaded
    push_jobs: Callable[[], int]  # async pushes accepted and not yet complete


class NodeMetrics(Instrument):
    """The metrics of one node (see the module docstring)."""

    def __init__(self, mode: str, live: LiveSources) -> None:
        self.registry = r = CollectorRegistry()
        self._mode = mode
        self.assignments = Counter(
            "aonode_assignments",
            "Assignments made durable in the store, by the node's confirmation mode",
            ["mode"],
            registry=r,
        )
        self.assignment_latency = Histogram(
            "aonode_assignment_latency_seconds",
            "From a request reaching its scheduler to the answer its mode promises",
            ["mode"],
            buckets=_FAST,
            registry=r,
        )
        self.commit_batch = Histogram(
            "aonode_store_commit_batch_size",
            "Items written per store transaction (group commit)",
            buckets=_SIZES,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "aonode_store_commit_seconds",
            "Time of one store COMMIT (the fsync of a batch)",
            buckets=_FAST,
            registry=r,
        )
        self.signature_seconds = Histogram(
            "aonode_signature_seconds",
            "Signing assignments (sign) and checking incoming messages' signatures (verify)",
            ["op"],
            buckets=_FAST,
            registry=r,
        )
        self.computed = Counter(
            "aonode_compute_slots",
            "Slots applied by process workers (rate() of it is slots/s)",
            registry=r,
        )
        self.push = Counter(
            "aonode_push_deliveries",
            "Outbox messages delivered by ~push@1.0",
            ["target", "result"],
            registry=r,
        )
        self.push_failures = Counter(
            "aonode_push_failed",
            "Outbox entries a push could not deliver to another node, by reason "
            "(each entry counted once, however often it is retried)",
            ["reason"],
            registry=r,
        )
        self.cron = Counter(
            "aonode_cron_firings", "Runs of ~cron@1.0 tasks", ["result"], registry=r
        )
        self.http = Counter(
            "aonode_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        for reason in REASONS:  # every reason shows, as 0, from the start
            self.push_failures.labels(reason)
        for mode in ("aggressive", "local_confirmation", "remote_confirmation"):
            if mode == self._mode:  # the node's own mode shows as 0 from the start
                self.assignments.labels(mode)
        self._routes: set[str] = set()
        self._routes_lock = threading.Lock()
        self._labels: dict[str, str] = {}  # path -> its route label, as decided once
        # labelled children by (metric, label values): ``labels()`` takes ~2 µs a call
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r.register(_LiveCollector(live))

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, looked up once (label sets here are bounded)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- hooks (some run on the store writer or signer threads) ----------

    def committed(self, items: int, seconds: float) -> None:
        self.commit_batch.observe(items)
        self.commit_seconds.observe(seconds)

    def verified(self, seconds: float) -> None:
        self._child(self.signature_seconds, "verify").observe(seconds)

    def signed(self, seconds: float) -> None:
        """A scheduler server signed one assignment (an ``Instrument`` hook)."""
        self._child(self.signature_seconds, "sign").observe(seconds)

    def assigned(self, mode: str, durable: bool, latency: float | None) -> None:
        """A scheduler server gave a new slot: count it once durable, time its answer."""
        if durable:
            self._child(self.assignments, mode).inc()
        if latency is not None:
            self._child(self.assignment_latency, mode).observe(latency)

    def push_delivered(self, local: bool, entry: dict[str, Any]) -> None:
        result = "error" if entry.get("response") == "error" else "ok"
        self.push.labels("local" if local else "remote", result).inc()

    def push_failed(self, reason: str) -> None:
        self._child(self.push_failures, reason).inc()

    def applied(self, slots: int) -> None:
        self.computed.inc(slots)

    def cron_fired(self, task: str, ok: bool) -> None:
        self._child(self.cron, "ok" if ok else "error").inc()

    def http_request(self, method: str, path: str, status: int) -> None:
        route = self._labels.get(path)
        if route is None:
            route = route_template(path)
            with self._routes_lock:
                if route not in self._routes:
                    if len(self._routes) >= MAX_ROUTES:
                        route = "{other}"
                    else:
                        self._routes.add(route)
                # a path's label never changes (``_routes`` only grows): remember it
                if len(self._labels) >= _LABELS_KEPT:
                    self._labels.clear()
                self._labels[path] = route
        self._child(self.http, method if method in _METHODS else "OTHER", route, str(status)).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    """Gauges read at scrape time: scheduler queues (top N), live processes, push jobs."""

    def __init__(self, live: LiveSources) -> None:
        self._live = live

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        live = self._live
        depths = sorted(live.queue_depths(), reverse=True)
        top = GaugeMetricFamily(
            "aonode_queue_depth",
            f"Requests waiting in a scheduler queue (the {TOP_QUEUES} deepest processes)",
            labels=["process"],
        )
        for depth, pid in depths[:TOP_QUEUES]:
            top.add_metric([pid], depth)
        yield top
        yield GaugeMetricFamily(
            "aonode_queue_depth_all",
            "Requests waiting in all scheduler queues",
            value=sum(d for d, _ in depths),
        )
        yield GaugeMetricFamily(
            "aonode_schedulers", "Scheduler servers running on this node", value=len(depths)
        )
        yield GaugeMetricFamily("aonode_workers", "Process workers loaded", value=live.workers())
        yield GaugeMetricFamily(
            "aonode_push_jobs",
            "Async pushes accepted and not yet complete",
            value=live.push_jobs(),
        )
