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

import math
import os
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
_SIGN, _VERIFY = ("sign",), ("verify",)
# ``_created`` samples, as prometheus_client decides them (its environment switch)
_USE_CREATED = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
    "true",
    "1",
    "t",
)


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


class _Family:
    """One counter or histogram family, its children kept as plain numbers.

    A child is a list: ``[value]`` for a counter; for a histogram one count per
    bucket (not cumulative, as prometheus_client keeps them) and the sum last.
    Children are made on first use, like ``labels()``, and each remembers when
    (its ``_created`` sample).
    """

    __slots__ = ("bounds", "children", "created", "doc", "labels", "les", "name", "type")

    def __init__(
        self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = ()
    ) -> None:
        self.name, self.doc, self.labels = name, doc, labels
        self.type = "histogram" if buckets else "counter"
        self.bounds = (*buckets, math.inf) if buckets else ()
        self.les: tuple[str, ...] = tuple(floatToGoString(b) for b in self.bounds)  # type: ignore[no-untyped-call]
        self.children: dict[tuple[str, ...], list[float]] = {}
        self.created: dict[tuple[str, ...], float] = {}
        if not labels:
            self.child(())

    def child(self, values: tuple[str, ...]) -> list[float]:
        counts = self.children.get(values)
        if counts is None:
            self.created[values] = time.time()
            counts = self.children[values] = [0.0] * (len(self.bounds) + 1 if self.bounds else 1)
        return counts

    def observe(self, counts: list[float], amount: float) -> None:
        if amount == amount:  # NaN is in no bucket (prometheus_client: ``amount <= bound``)
            counts[bisect_left(self.bounds, amount)] += 1
        counts[-1] += amount

    def metric(self) -> Metric:
        m = Metric(self.name, self.doc, self.type)
        name, add = self.name, m.add_sample
        created = self.created if _USE_CREATED else None
        for values, counts in list(self.children.items()):
            labels = dict(zip(self.labels, values, strict=True))
            if self.type == "counter":
                add(name + "_total", labels, counts[0])
            else:
                acc = 0.0
                for le, n in zip(self.les, counts, strict=False):
                    acc += n
                    add(name + "_bucket", {**labels, "le": le}, acc)
                add(name + "_count", labels, acc)
                add(name + "_sum", labels, counts[-1])
            if created is not None:
                add(name + "_created", labels, created[values])
        return m


class NodeMetrics(Instrument):
    """The metrics of one node (see the module docstring).

    The hooks add to plain numbers under one lock (some run on the store
    writer's or a signer's thread); :class:`_Collector` turns them into the
    Prometheus families at scrape time.  Per message this is a few list
    additions, where prometheus_client's ``Counter``/``Histogram`` took a lock
    and several calls per value.
    """

    def __init__(self, mode: str, live: LiveSources) -> None:
        self.registry = r = CollectorRegistry()
        self._mode = mode
        self._lock = threading.Lock()
        self.assignments = _Family(
            "aonode_assignments",
            "Assignments made durable in the store, by the node's confirmation mode",
            ("mode",),
        )
        self.assignment_latency = _Family(
            "aonode_assignment_latency_seconds",
            "From a request reaching its scheduler to the answer its mode promises",
            ("mode",),
            _FAST,
        )
        self.commit_batch = _Family(
            "aonode_store_commit_batch_size",
            "Items written per store transaction (group commit)",
            buckets=_SIZES,
        )
        self.commit_seconds = _Family(
            "aonode_store_commit_seconds",
            "Time of one store COMMIT (the fsync of a batch)",
            (),
            _FAST,
        )
        self.signature_seconds = _Family(
            "aonode_signature_seconds",
            "Signing assignments (sign) and checking incoming messages' signatures (verify)",
            ("op",),
            _FAST,
        )
        self.computed = _Family(
            "aonode_compute_slots", "Slots applied by process workers (rate() of it is slots/s)"
        )
        self.push = _Family(
            "aonode_push_deliveries", "Outbox messages delivered by ~push@1.0", ("target", "result")
        )
        self.push_failures = _Family(
            "aonode_push_failed",
            "Outbox entries a push could not deliver to another node, by reason "
            "(each entry counted once, however often it is retried)",
            ("reason",),
        )
        self.cron = _Family("aonode_cron_firings", "Runs of ~cron@1.0 tasks", ("result",))
        self.http = _Family(
            "aonode_http_requests",
            "HTTP requests by method, route template and status",
            ("method", "route", "status"),
        )
        for reason in REASONS:  # every reason shows, as 0, from the start
            self.push_failures.child((reason,))
        for mode in ("aggressive", "local_confirmation", "remote_confirmation"):
            if mode == self._mode:  # the node's own mode shows as 0 from the start
                self.assignments.child((mode,))
        self._routes: set[str] = set()
        self._labels: dict[str, str] = {}  # path -> its route label, as decided once
        r.register(
            _Collector(
                (
                    self.assignments,
                    self.assignment_latency,
                    self.commit_batch,
                    self.commit_seconds,
                    self.signature_seconds,
                    self.computed,
                    self.push,
                    self.push_failures,
                    self.cron,
                    self.http,
                ),
                self._lock,
            )
        )
        r.register(_LiveCollector(live))
        self._batch = self.commit_batch.child(())
        self._commit = self.commit_seconds.child(())
        self._computed = self.computed.child(())

    # -- hooks (some run on the store writer or signer threads) ----------

    def committed(self, items: int, seconds: float) -> None:
        with self._lock:
            self.commit_batch.observe(self._batch, items)
            self.commit_seconds.observe(self._commit, seconds)

    def verified(self, seconds: float) -> None:
        with self._lock:
            signatures = self.signature_seconds
            signatures.observe(signatures.child(_VERIFY), seconds)

    def signed(self, seconds: float) -> None:
        """A scheduler server signed one assignment (an ``Instrument`` hook)."""
        with self._lock:
            signatures = self.signature_seconds
            signatures.observe(signatures.child(_SIGN), seconds)

    def assigned(self, mode: str, durable: bool, latency: float | None) -> None:
        """A scheduler server gave a new slot: count it once durable, time its answer."""
        key = (mode,)
        with self._lock:
            if durable:
                self.assignments.child(key)[0] += 1
            if latency is not None:
                latencies = self.assignment_latency
                latencies.observe(latencies.child(key), latency)

    def push_delivered(self, local: bool, entry: dict[str, Any]) -> None:
        result = "error" if entry.get("response") == "error" else "ok"
        with self._lock:
            self.push.child(("local" if local else "remote", result))[0] += 1

    def push_failed(self, reason: str) -> None:
        with self._lock:
            self.push_failures.child((reason,))[0] += 1

    def applied(self, slots: int) -> None:
        with self._lock:
            self._computed[0] += slots

    def cron_fired(self, task: str, ok: bool) -> None:
        with self._lock:
            self.cron.child(("ok" if ok else "error",))[0] += 1

    def http_request(self, method: str, path: str, status: int) -> None:
        with self._lock:
            route = self._labels.get(path)
            if route is None:
                route = route_template(path)
                if route not in self._routes:
                    if len(self._routes) >= MAX_ROUTES:
                        route = "{other}"
                    else:
                        self._routes.add(route)
                # a path's label never changes (``_routes`` only grows): remember it
                if len(self._labels) >= _LABELS_KEPT:
                    self._labels.clear()
                self._labels[path] = route
            key = (method if method in _METHODS else "OTHER", route, str(status))
            self.http.child(key)[0] += 1

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class _Collector(Collector):
    """The node's counters and histograms, as Prometheus families at scrape time."""

    def __init__(self, families: tuple[_Family, ...], lock: threading.Lock) -> None:
        self._families = families
        self._lock = lock

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one consistent scrape
            metrics = [f.metric() for f in self._families]
        yield from metrics


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
