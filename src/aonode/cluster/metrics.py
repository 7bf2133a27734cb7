"""``/metrics`` of a cluster: every worker's counters, summed, wherever the scrape lands.

Each worker counts what it did (its HTTP requests, the assignments its actors
made, the slots its runtimes applied).  A scrape lands on one worker, which asks
every peer for its exposition over the channel and adds the samples of the
same name and labels: counters, histogram buckets, sums and counts add up
exactly; gauges (queue depths, loaded workers, push jobs) add up too, each
process living on one worker; a ``_created`` timestamp keeps the earliest.  A
worker that is restarting at that moment is left out of that one scrape (its
counters start again from 0 when it is back, which Prometheus reads as a reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from aonode.cluster.channel import Handler, Link, ask_all


def merge(expositions: Iterable[bytes]) -> bytes:
    """One exposition whose every sample is the sum of the same sample in each input."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in expositions:
        for family in text_string_to_metric_families(text.decode()):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            seen = values[family.name]
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if key not in seen:
                    seen[key] = s.value
                elif s.name.endswith("_created"):
                    seen[key] = min(seen[key], s.value)
                else:
                    seen[key] += s.value
    for name, family in families.items():
        family.samples = [
            Sample(sample, dict(labels), value) for (sample, labels), value in values[name].items()
        ]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families.values())))
    return generate_latest(registry)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families


class ClusterMetrics:
    """The exposition of worker ``index``, summed with every peer's."""

    def __init__(self, local: Callable[[], bytes], peers: Mapping[int, Link]) -> None:
        self.local = local
        self.peers = peers

    async def __call__(self) -> bytes:
        answers = await ask_all(self.peers, "metrics", "this scrape")
        return merge([self.local(), *answers.values()])


def handlers(local: Callable[[], bytes]) -> dict[str, Handler]:
    """A worker's own exposition, for the peer a scrape landed on."""

    async def metrics(payload: bytes) -> bytes:
        return local()

    return {"metrics": metrics}
