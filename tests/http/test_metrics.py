"""``GET /metrics``: Prometheus text that parses, counters that move exactly, bounded labels."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client.parser import text_string_to_metric_families

from aonode.ops.metrics import MAX_ROUTES, route_template
from aonode.wallet import Wallet
from tests.conftest import LiveNode, sign_message, sign_process
from tests.process.test_device_http import send, spawn_lua
from tests.push_helpers import until
from tests.test_push import PING

ANS = {"content-type": "application/ans104"}
Live = Callable[..., Awaitable[LiveNode]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(ln: LiveNode) -> Samples:
    r = await ln.client.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def routes(samples: Samples) -> set[str]:
    return {dict(k[1])["route"] for k in samples if k[0] == "aonode_http_requests_total"}


async def test_counters_move_by_exactly_the_messages_posted(
    live: Live, user_wallet: Wallet
) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200, r.text
    pid = proc.id
    before = await scrape(ln)
    posted = 7
    for i in range(posted):
        m = sign_message(user_wallet, pid, data=f"m{i}".encode())
        r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
        assert r.status_code == 200, r.text
    after = await scrape(ln)

    mode = {"mode": "local_confirmation"}
    assert moved(before, after, "aonode_assignments_total", **mode) == posted
    assert moved(before, after, "aonode_assignment_latency_seconds_count", **mode) == posted
    assert moved(before, after, "aonode_signature_seconds_count", op="sign") == posted
    assert moved(before, after, "aonode_signature_seconds_count", op="verify") == posted
    http = {"method": "POST", "route": "/{id}/schedule", "status": "200"}
    assert moved(before, after, "aonode_http_requests_total", **http) == posted
    # each assignment is one item of some commit; nothing else was written meanwhile
    assert moved(before, after, "aonode_store_commit_batch_size_sum") == posted
    commits = moved(before, after, "aonode_store_commit_seconds_count")
    assert 1 <= commits <= posted
    assert moved(before, after, "aonode_store_commit_batch_size_count") == commits
    # gauges read at scrape time: this process's (empty) queue, one scheduler
    assert value(after, "aonode_queue_depth", process=pid) == 0
    assert value(after, "aonode_schedulers") == 1
    # a re-post keeps its slot: no new assignment
    r = await ln.client.post(f"/{pid}/schedule", content=m.item.raw, headers=ANS)
    assert r.status_code == 200 and r.json()["slot"] == posted
    again = await scrape(ln)
    assert moved(after, again, "aonode_assignments_total", **mode) == 0
    assert moved(after, again, "aonode_http_requests_total", **http) == 1


async def test_compute_push_and_cron_counters(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    pid = await spawn_lua(ln, user_wallet)
    slot = await send(ln, user_wallet, pid, PING)  # slots 0 and 1
    before = await scrape(ln)
    r = await ln.client.post(f"/{pid}~process@1.0/push", params={"slot": slot})
    assert r.status_code == 200, r.text
    after = await scrape(ln)
    # slots 0..1, then the ten Ping deliveries, each scheduled and computed
    assert moved(before, after, "aonode_compute_slots_total") == 12
    assert moved(before, after, "aonode_push_deliveries_total", target="local", result="ok") == 10
    assert moved(before, after, "aonode_assignments_total", mode="local_confirmation") == 10
    compute = {"method": "POST", "route": "/{id}~process@1.0/push", "status": "200"}
    assert moved(before, after, "aonode_http_requests_total", **compute) == 1

    cron_path = ("cron-path", f"/{pid}~process@1.0/schedule")  # the owner signs its task
    tick = sign_message(user_wallet, pid, data=b"", action="Tick", extra=[cron_path])
    ans = {"content-type": "application/ans104"}
    r = await ln.client.post("/~cron@1.0/once", content=tick.item.raw, headers=ans)
    assert r.status_code == 200, r.text

    async def fired() -> bool:
        return value(await scrape(ln), "aonode_cron_firings_total", result="ok") == 1

    await until(fired, "the cron firing is counted")
    final = await scrape(ln)
    assert moved(after, final, "aonode_assignments_total", mode="local_confirmation") == 1


async def test_routes_are_templates_and_bounded(live: Live) -> None:
    assert route_template("/") == "/"
    pid = "A" * 43
    assert route_template(f"/{pid}~process@1.0/compute") == "/{id}~process@1.0/compute"
    assert route_template(f"/{pid}/slot/current") == "/{id}/slot/current"
    assert route_template("/~scheduler@1.0/schedule") == "/~scheduler@1.0/schedule"
    assert route_template(f"/{pid}~evil-{pid}@9/x") == "/{id}~{device}/{other}"
    assert route_template("/a/b/c/d/e/f/g") == "/{other}/{other}/{other}/{other}/{other}/…"
    assert route_template(f"/{pid}/compute=12") == "/{id}/compute={v}"

    ln = await live()
    for i in range(MAX_ROUTES + 50):  # random paths: one label, not one per path
        r = await ln.client.get(f"/nothing-{i}/here-{i}")
        assert r.status_code == 404
    seen = routes(await scrape(ln))
    assert "/{other}/{other}" in seen
    assert not any("nothing" in route for route in seen)
    assert len(seen) <= MAX_ROUTES + 1


async def test_bad_input_on_the_new_routes(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    proc = sign_process(user_wallet, ln.node.address)
    r = await ln.client.post("/~scheduler@1.0/schedule", content=proc.item.raw, headers=ANS)
    assert r.status_code == 200
    before = await scrape(ln)
    cases: list[tuple[str, str, dict[str, str], int, str]] = [
        ("POST", "/metrics", {}, 405, "method-not-allowed"),
        ("GET", "/metrics/extra", {}, 404, "no-such-route"),
        ("DELETE", "/~dashboard", {}, 405, "method-not-allowed"),
        ("GET", "/~dashboard/nothing", {}, 404, "no-such-route"),
        ("GET", "/~dashboard/state", {"limit": "abc"}, 400, "bad-parameter"),
        ("GET", "/~dashboard/state", {"limit": "1000000"}, 400, "bad-parameter"),
        ("GET", "/~dashboard/state", {"latest": "0"}, 400, "bad-parameter"),
        ("GET", "/~dashboard/state", {"latest": "-3"}, 400, "bad-parameter"),
        ("GET", "/~dashboard/state", {"process": "not-an-id"}, 400, "bad-parameter"),
        ("GET", "/~dashboard/state", {"process": "B" * 43}, 404, "unknown-process"),
    ]
    for method, path, params, status, code in cases:
        r = await ln.client.request(method, path, params=params)
        assert r.status_code == status, (method, path, params, r.text)
        assert r.json()["error"]["code"] == code, r.text
    after = await scrape(ln)
    assert moved(before, after, "aonode_assignments_total", mode="local_confirmation") == 0
    r = await ln.client.get("/~dashboard/state", params={"process": proc.id})
    assert r.status_code == 200
    assert [p["slot"] for p in r.json()["processes"] if p["id"] == proc.id] == [0]
