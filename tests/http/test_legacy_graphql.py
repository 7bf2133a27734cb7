"""``POST /graphql``: the gateway queries of aoconnect and ao-scheduler-utils, over HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aonode.codec import ans104
from aonode.wallet import Wallet
from tests.conftest import LiveNode
from tests.http.test_legacy import UNKNOWN, legacy_send, legacy_spawn

Live = Callable[..., Awaitable[LiveNode]]

# the queries as the clients send them (aoconnect 0.0.98, ao-scheduler-utils 0.0.29)
BY_IDS = """
query GetTransactions ($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds) {
    edges { node { owner { address } tags { name value } block { id height timestamp } } }
  }
}"""
PROCESS_TAGS = """
query GetTransactions ($transactionIds: [ID!]!) {
  transactions(ids: $transactionIds tags: [{ name: "Data-Protocol", values: ["ao"] }]) {
    edges { node { tags { name value } } }
  }
}"""
LOCATION = """
query GetSchedulerLocation ($owner: String!) {
  transactions (
    owners: [$owner]
    tags: [
      { name: "Data-Protocol", values: ["ao"] },
      { name: "Type", values: ["Scheduler-Location"] }
    ]
    # Only need the most recent Scheduler-Location
    sort: HEIGHT_DESC
    first: 1
  ) { edges { node { tags { name value } } } }
}"""
FULL = """
query ($ids: [ID!]!) {
  transactions(ids: $ids) {
    pageInfo { hasNextPage }
    edges { cursor node {
      id anchor signature recipient block { timestamp } owner { address key }
      fee { winston ar } quantity { winston ar } data { size type } tags { name value }
      block { id timestamp height previous } parent { id }
    } }
  }
}"""


async def gql(ln: LiveNode, query: str, **variables: Any) -> Any:
    r = await ln.client.post("/graphql", json={"query": query, "variables": variables})
    assert r.status_code == 200, r.text
    assert "errors" not in r.json(), r.text
    return r.json()["data"]["transactions"]


def _tags(node: dict[str, Any]) -> dict[str, str]:
    return {t["name"]: t["value"] for t in node["tags"]}


async def test_the_clients_queries(live: Live, user_wallet: Wallet) -> None:
    ln = await live()
    module = ans104.sign(
        user_wallet,
        data=b"return {}",
        tags=[("Data-Protocol", "ao"), ("Type", "Module"), ("Module-Format", "lua")],
    )
    r = await ln.client.post(
        "/~message@1.0/store", content=module.raw, headers={"content-type": "application/ans104"}
    )
    assert r.status_code == 200, r.text
    pid = await legacy_spawn(ln, user_wallet)
    mid = await legacy_send(ln, user_wallet, pid, "hello")

    # aoconnect's spawn: the module's owner and tags
    (edge,) = (await gql(ln, BY_IDS, transactionIds=[module.id]))["edges"]
    assert edge["node"]["owner"]["address"] == user_wallet.address
    assert _tags(edge["node"])["Module-Format"] == "lua" and edge["node"]["block"] is None

    # scheduler-utils' locate: the process's Scheduler tag, then that wallet's location
    (edge,) = (await gql(ln, PROCESS_TAGS, transactionIds=[pid]))["edges"]
    assert _tags(edge["node"])["Scheduler"] == ln.node.address
    (edge,) = (await gql(ln, LOCATION, owner=ln.node.address))["edges"]
    loc = _tags(edge["node"])
    assert loc["Url"].rstrip("/") == ln.url.rstrip("/") and int(loc["Time-To-Live"]) > 0
    assert (await gql(ln, LOCATION, owner=user_wallet.address))["edges"] == []

    # getProcess' full selection, a scheduled message with its block
    page = await gql(ln, FULL, ids=[mid, UNKNOWN, pid])
    assert page["pageInfo"] == {"hasNextPage": False}
    assert [e["node"]["id"] for e in page["edges"]] == [mid, pid]
    node = page["edges"][0]["node"]
    native = (await ln.client.get(f"/{pid}/schedule")).json()["assignments"]
    assert node["block"]["height"] == native[1]["block-height"]
    assert node["recipient"] == pid and node["data"]["size"] == "5"
    assert node["fee"] == {"winston": "0", "ar": "0.000000000000"}


async def test_unknown_queries_are_graphql_errors_not_500(live: Live) -> None:
    ln = await live()
    bad = [
        b"not json",
        b'{"variables": {}}',
        b'{"query": "{ blocks { edges { node { id } } } }"}',  # a field outside the subset
        b'{"query": "{ transactions(ids: [1]) { edges { node { nope } } } }"}',
        b'{"query": "query { transactions("}',  # a syntax error
        b'{"query": "query ($i: [ID!]!) { transactions(ids: $i) { edges { cursor } } }"}',
    ]
    for body in bad:
        r = await ln.client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (body, r.text)
        assert r.json()["errors"][0]["message"], body
    r = await ln.client.get("/graphql")
    assert r.status_code == 405
