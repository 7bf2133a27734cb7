"""``POST /graphql``: the gateway queries the legacy ao clients make, answered by this node.

aoconnect's legacy ``spawn`` and ``@permaweb/ao-scheduler-utils`` (``locate``,
``validate``, ``raw``) do not ask an SU where a scheduler is: they ask an
Arweave gateway's GraphQL.  The queries they send are few:

- the module or process by id: ``transactions(ids: [ID]) { edges { node {
  id owner { address key } tags { name value } block { ... } ... } } }``
  (aoconnect checks a module's tags before spawning; scheduler-utils reads a
  process's ``Scheduler`` tag);
- a scheduler's newest ``Scheduler-Location`` by its wallet:
  ``transactions(owners: [A], tags: [{name: "Type", values:
  ["Scheduler-Location"]}], sort: HEIGHT_DESC, first: 1)``.

So a single node can stand in for the gateway too, this module serves those
from what the node holds: messages it stores or schedules (by id) and the
location records it keeps (by owner; the node signs its own on every start).
The schema is a subset of the Arweave gateway schema with the same names, so
the clients' queries parse and validate unchanged; the queries are executed
by graphql-core (a real parser and validator): a query asking for a field or
argument outside the subset is answered as a GraphQL server answers it,
``400 {"errors": [{"message"}]}``; a fault of the node itself while resolving
stays a 500 (the client did nothing wrong).

What is not indexed here is answered empty rather than guessed: a query by
owner finds only location records; ``recipients``, ``bundledIn``, ``block``
ranges and ``after`` cursors are accepted and match nothing beyond what
ids/owners found (``after`` always ends the listing: every answer is one page).
Amounts are zero (ANS-104 items carry no fee or quantity); ``block`` is the
Arweave block the node's scheduler stamped on the item's assignment (null
for a stored, unscheduled item).
"""

from __future__ import annotations

from typing import Any

import orjson
from graphql import GraphQLError, GraphQLSchema, build_schema, graphql

from aonode.codec.b64 import b64url_encode
from aonode.errors import AONodeError, BadParameter
from aonode.http.request import Request
from aonode.http.responses import Response, json_response
from aonode.http.routing import Match
from aonode.message import Message
from aonode.scheduler.assignment import Assignment
from aonode.services import Services

SDL = """
type Query {
  transactions(
    ids: [ID!], owners: [String!], recipients: [String!], tags: [TagFilter!],
    bundledIn: [ID!], block: BlockFilter, first: Int = 10, after: String,
    sort: SortOrder = HEIGHT_DESC
  ): TransactionConnection!
  transaction(id: ID!): Transaction
}
input TagFilter { name: String!, values: [String!]!, op: TagOperator = EQ }
input BlockFilter { min: Int, max: Int }
enum TagOperator { EQ NEQ }
enum SortOrder { HEIGHT_ASC HEIGHT_DESC INGESTED_AT_ASC INGESTED_AT_DESC }
type TransactionConnection { pageInfo: PageInfo!, edges: [TransactionEdge!]! }
type PageInfo { hasNextPage: Boolean! }
type TransactionEdge { cursor: String!, node: Transaction! }
type Transaction {
  id: ID!, anchor: String!, signature: String!, recipient: String!,
  owner: Owner!, fee: Amount!, quantity: Amount!, data: MetaData!,
  tags: [Tag!]!, block: Block, parent: Parent, bundledIn: Bundle
}
type Owner { address: String!, key: String! }
type Amount { winston: String!, ar: String! }
type MetaData { size: String!, type: String }
type Tag { name: String!, value: String! }
type Block { id: ID!, timestamp: Int!, height: Int!, previous: ID }
type Parent { id: ID! }
type Bundle { id: ID! }
"""

SCHEMA: GraphQLSchema = build_schema(SDL)
ZERO = {"winston": "0", "ar": "0.000000000000"}


MAX_REQUEST = 64 * 1024  # the gateway queries clients send are a few hundred bytes


def _block(a: Assignment | None) -> dict[str, Any] | None:
    if a is None:
        return None
    h = a.header
    return {"id": h.block_hash, "timestamp": h.block_timestamp, "height": h.block_height}


def _transaction(msg: Message, stamped: Assignment | None) -> dict[str, Any]:
    item = msg.item
    tags = [{"name": n, "value": v} for n, v in item.tags]
    ctype = next((t["value"] for t in tags if t["name"].lower() == "content-type"), None)
    target = getattr(item, "target", b"")
    anchor = getattr(item, "anchor", b"")
    return {
        "id": msg.id,
        "anchor": b64url_encode(anchor) if anchor else "",
        "signature": b64url_encode(item.signature),
        "recipient": b64url_encode(target) if target else "",
        "owner": {"address": msg.signer, "key": b64url_encode(item.owner)},
        "fee": ZERO,
        "quantity": ZERO,
        "data": {"size": str(len(item.data)), "type": ctype},
        "tags": tags,
        "block": _block(stamped),
        "parent": None,
        "bundledIn": None,
    }


async def _by_id(svc: Services, tx: str) -> dict[str, Any] | None:
    """A message the node stores or schedules, with the block of its assignment."""
    process = await svc.scheduling.process_message(tx)
    if process is not None:
        rows = await svc.store.slots(tx, 0, 0, 1)
        first = Assignment.from_stored(rows[0]) if rows else None
        return _transaction(process, first)
    record = await svc.store.get_message(tx)
    if record is None:
        return None
    msg = Message.from_record(record)
    stamped = None
    if msg.target is not None:
        stored = await svc.store.by_message(msg.target, tx)
        stamped = Assignment.from_stored(stored) if stored is not None else None
    return _transaction(msg, stamped)


async def _locations(svc: Services, owners: list[str]) -> list[dict[str, Any]]:
    out = []
    for owner in owners:
        found = await svc.store.get_location(owner)
        if found is not None:
            out.append(_transaction(Message.from_record(found[1]), None))
    return out


def _matches(tx: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    have = {(t["name"], t["value"]) for t in tx["tags"]}
    for f in filters:
        hit = any((f["name"], v) in have for v in f["values"])
        if hit != (f.get("op", "EQ") == "EQ"):
            return False
    return True


async def _resolve_transactions(_root: object, info: Any, **args: Any) -> dict[str, Any]:
    svc: Services = info.context
    found: list[dict[str, Any]] = []
    if args.get("ids") is not None:
        for tx in args["ids"]:
            doc = await _by_id(svc, tx)
            if doc is not None:
                found.append(doc)
        if args.get("owners") is not None:
            found = [d for d in found if d["owner"]["address"] in args["owners"]]
    elif args.get("owners") is not None:
        found = await _locations(svc, args["owners"])
    found = [d for d in found if _matches(d, args.get("tags") or [])]
    if args.get("recipients") is not None:
        found = [d for d in found if d["recipient"] in args["recipients"]]
    if args.get("after"):
        found = []
    first = max(0, args.get("first") or 0)
    edges = [{"cursor": d["id"], "node": d} for d in found[:first]]
    return {"pageInfo": {"hasNextPage": len(found) > first}, "edges": edges}


async def _resolve_transaction(_root: object, info: Any, **args: Any) -> dict[str, Any] | None:
    return await _by_id(info.context, args["id"])


def _root() -> dict[str, Any]:
    return {"transactions": _resolve_transactions, "transaction": _resolve_transaction}


def _field_resolver(source: Any, info: Any, **args: Any) -> Any:
    value = source.get(info.field_name) if isinstance(source, dict) else None
    if callable(value):
        return value(source, info, **args)
    return value


async def handle(svc: Services, request: Request, m: Match) -> Response:
    """``POST /graphql``: execute one ``{"query", "variables"?, "operationName"?}``."""
    body = await request.body()
    if len(body) > MAX_REQUEST:  # every id in it is a store lookup: bound the work
        raise BadParameter(f"the request is over {MAX_REQUEST} bytes; ask for fewer ids or owners")
    doc = orjson.loads(body)  # not JSON: a 400 (http/responses.py)
    if not isinstance(doc, dict) or not isinstance(doc.get("query"), str):
        raise BadParameter('the body must be a JSON object with a "query" string')
    variables = doc.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise BadParameter('"variables" must be a JSON object')
    operation = doc.get("operationName")
    result = await graphql(
        SCHEMA,
        doc["query"],
        root_value=_root(),
        context_value=svc,
        variable_values=variables,
        operation_name=operation if isinstance(operation, str) else None,
        field_resolver=_field_resolver,
    )
    if result.errors:
        for e in result.errors:  # a fault of the node's own, not of the query: not a 400
            original = e.original_error
            ours = not isinstance(original, (AONodeError, GraphQLError))
            if e.path is not None and isinstance(original, Exception) and ours:
                raise original
        errors = [{"message": e.message} for e in result.errors]
        if result.data is None:  # a query that could not run: the client's mistake
            return json_response({"errors": errors}, 400)
        return json_response({"data": result.data, "errors": errors})
    return json_response({"data": result.data})
