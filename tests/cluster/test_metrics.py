"""``/metrics`` of a 2-worker node: every worker's counters summed, exactly."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aonode.cluster.metrics import merge
from aonode.ops.metrics import LiveSources, NodeMetrics
from aonode.wallet import Wallet
from tests.cluster.conftest import Cluster
from tests.cluster.test_routing import one_process_per_shard, post
from tests.conftest import sign_message

pytestmark = pytest.mark.crash


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def node_metrics(queue: list[tuple[int, str]], loaded: int) -> NodeMetrics:
    return NodeMetrics("local_confirmation", LiveSources(lambda: queue, lambda: loaded, lambda: 0))


def test_merge_adds_counters_histograms_and_gauges() -> None:
    a, b = node_metrics([(3, "p")], 1), node_metrics([(4, "q")], 2)
    for m, n in ((a, 2), (b, 5)):
        for _ in range(n):
            m.http_request("POST", "/x/schedule", 200)
            m.committed(2, 0.001)
    merged = samples(merge([a.exposition(), b.exposition()]))
    [route] = [k for k in samples(a.exposition()) if k[0] == "aonode_http_requests_total"]
    assert merged[route] == 7
    assert merged[("aonode_store_commit_batch_size_count", ())] == 7
    assert merged[("aonode_store_commit_batch_size_sum", ())] == 14
    assert merged[("aonode_queue_depth_all", ())] == 7
    assert merged[("aonode_queue_depth", (("process", "p"),))] == 3
    assert merged[("aonode_queue_depth", (("process", "q"),))] == 4
    assert merged[("aonode_workers", ())] == 3
    one = samples(a.exposition())
    created = [k for k in one if k[0].endswith("_created")]
    assert created and all(merged[k] <= one[k] for k in created)  # the earliest, not a sum


async def test_the_assignment_counter_counts_every_message_once(
    cluster: Cluster, user_wallet: Wallet
) -> None:
    url = cluster.url
    procs = one_process_per_shard(user_wallet, cluster.supervisor.address)
    for proc in procs:
        assert (await post(url, "/~scheduler@1.0/schedule", proc)).status_code == 200
    n = 10
    replies = await asyncio.gather(
        *(
            post(url, f"/{p.id}/schedule", sign_message(user_wallet, p.id))
            for p in procs
            for _ in range(n)
        )
    )
    assert all(r.status_code == 200 for r in replies)
    mode = (("mode", "local_confirmation"),)
    for _ in range(6):  # fresh connections: whichever worker is scraped says the same
        async with httpx.AsyncClient(timeout=60) as client:
            got = samples((await client.get(f"{url}/metrics")).content)
        assert got[("aonode_assignments_total", mode)] == 2 * n + 2
        assert got[("aonode_assignment_latency_seconds_count", mode)] == 2 * n + 2
        assert got[("aonode_schedulers", ())] == 2
