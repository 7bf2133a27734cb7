"""Ownership of processes across nodes that share one PostgreSQL: leases with fencing.

Each process has at most one lease row: the owner (one node *incarnation*:
``<node>#<incarnation>``, the node part stable across restarts of one node,
the incarnation fresh at every start), the owner's advertised URL, a fencing
token and an expiry.  The rules:

* **Claim**: a node takes the lease when there is none, when it has expired
  (the owner stopped renewing), or when its owner is an earlier incarnation of
  the same node (a node restarted after a crash need not wait for its own old
  lease to run out), or keeps it when it is its own.  Taking it from another
  owner adds one to the token; the token only ever grows (rows are never
  deleted; a release only expires the row), so an owner that lost its lease
  can never match the row again — an old incarnation included.
* **Fencing**: every append of a node that uses leases reads the process's
  lease row ``FOR SHARE`` *in the append's transaction* and needs it to carry
  this node's owner id and token.  A takeover must update that row, so it
  waits for such a transaction to commit (and then finds its writes when it
  resumes from the latest slot), or it committed first and the late append is
  refused: a paused or partitioned old owner never writes again.
* **Time** is the database's clock (``now()``), one clock for every node, so
  skew between machines does not matter; only the lease length does.
* **Renewal** runs in the background of the store every third of a lease
  length; a lease found taken (or gone) is dropped from the held set, so the
  next append for it is refused at once.
* **Workers of one node** (``serve --workers N``) are each an incarnation of
  that node: the claim rule cannot tell a sibling from an earlier run, so it is
  the shard routing (``aonode.cluster``) that keeps claims apart: only the
  worker owning a process by shard ever schedules it, hence claims it.  A
  misrouted claim would still be safe (the fence refuses the sibling's writes;
  nothing is written twice), only unavailable while they alternate.  Release
  and renewal match the whole owner, so one worker's stop or renewal never
  touches a sibling's leases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from aonode.errors import LeaseLost

log = logging.getLogger("aonode.store.lease")

_CLAIM: Final = (
    "INSERT INTO leases AS l (process, owner, url, token, expires_at)"
    " VALUES ($1, $2, $3, 1, now() + $4 * interval '1 second')"
    " ON CONFLICT (process) DO UPDATE SET owner = excluded.owner, url = excluded.url,"
    " expires_at = excluded.expires_at,"
    " token = CASE WHEN l.owner = excluded.owner THEN l.token ELSE l.token + 1 END"
    " WHERE l.owner = excluded.owner OR l.expires_at < now()"
    " OR split_part(l.owner, '#', 1) = split_part(excluded.owner, '#', 1)"
    " RETURNING token"
)
_OWNER: Final = "SELECT url FROM leases WHERE process = $1"
_RENEW: Final = (
    "UPDATE leases AS l SET expires_at = now() + $4 * interval '1 second'"
    " FROM unnest($1::text[], $2::bigint[]) AS h(process, token)"
    " WHERE l.process = h.process AND l.token = h.token AND l.owner = $3"
    " RETURNING l.process"
)
_RELEASE: Final = (
    "UPDATE leases SET expires_at = '-infinity' WHERE process = any($1::text[]) AND owner = $2"
)
_HEARTBEAT: Final = (
    "INSERT INTO nodes (owner, url, started_at, heartbeat) VALUES ($1, $2, now(), now())"
    " ON CONFLICT (owner) DO UPDATE SET url = excluded.url, heartbeat = now()"
)
# A node that stopped cleanly leaves the list at once; one that died (its heartbeat
# silent) is listed for an hour, so that status shows it, then forgotten: without
# this every start of a cluster added N rows for good.  Leases keep their own URL.
NODE_RETENTION: Final = 3600.0
_LEAVE: Final = "DELETE FROM nodes WHERE owner = $1"
_PRUNE: Final = (
    "DELETE FROM nodes WHERE heartbeat < now() - $1 * interval '1 second' AND owner <> $2"
)
_NODES: Final = (
    "SELECT owner, url, extract(epoch FROM started_at)::float8,"
    " extract(epoch FROM heartbeat)::float8,"
    " heartbeat > now() - $1 * interval '1 second' FROM nodes ORDER BY started_at, owner"
)
LEASES_FOR_SHARE: Final = (
    "SELECT process, owner, token FROM leases WHERE process = any($1::text[])"
    " ORDER BY process FOR SHARE"
)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """One node (incarnation) that used the database, for status output."""

    owner: str
    url: str
    started_at: float  # Unix seconds, the database's clock
    heartbeat: float
    live: bool  # heard from within one lease length


class LeaseBook:
    """This node's view of its leases: who it is, and the token of each lease held."""

    def __init__(self, owner: str, url: str, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"lease length must be positive, not {seconds}")
        self.owner = owner
        self.url = url
        self.seconds = seconds
        self.held: dict[str, int] = {}

    def check(self, process: str, rows: Sequence[asyncpg.Record]) -> None:
        """Raise :class:`LeaseLost` unless the lease rows show ``process`` as ours."""
        token = self.held.get(process)
        for row in rows:
            if row[0] == process:
                if token is not None and (row[1], row[2]) == (self.owner, token):
                    return
                break
        self.held.pop(process, None)
        raise LeaseLost(
            f"process {process}: this node does not hold its lease (fenced out); nothing written"
        )

    async def claim(self, conn: asyncpg.Pool | asyncpg.Connection, process: str) -> str | None:
        """Take or keep the lease: ``None`` when ours now, else the live owner's URL."""
        token = await conn.fetchval(_CLAIM, process, self.owner, self.url, self.seconds)
        if token is not None:
            if self.held.get(process) != token:
                log.info("took the lease of %s (token %d)", process, token)
            self.held[process] = int(token)
            return None
        self.held.pop(process, None)
        url = await conn.fetchval(_OWNER, process)
        return str(url) if url is not None else ""

    async def renew(self, conn: asyncpg.Pool | asyncpg.Connection) -> list[str]:
        """Extend every held lease; the processes whose lease was lost (dropped here)."""
        await conn.execute(_HEARTBEAT, self.owner, self.url)
        await conn.execute(_PRUNE, max(NODE_RETENTION, self.seconds), self.owner)
        if not self.held:
            return []
        held = dict(self.held)
        rows = await conn.fetch(_RENEW, list(held), list(held.values()), self.owner, self.seconds)
        kept = {row[0] for row in rows}
        lost = [p for p in held if p not in kept]
        for process in lost:
            if self.held.get(process) == held[process]:
                del self.held[process]
            log.warning("lost the lease of %s to another node", process)
        return lost

    async def release(self, conn: asyncpg.Pool | asyncpg.Connection, processes: list[str]) -> None:
        """Expire our leases at once (a clean stop): another node may take them now."""
        for process in processes:
            self.held.pop(process, None)
        if processes:
            await conn.execute(_RELEASE, processes, self.owner)

    async def leave(self, conn: asyncpg.Pool | asyncpg.Connection) -> None:
        """A clean stop: every lease released and this incarnation off the node list."""
        await self.release(conn, list(self.held))
        await conn.execute(_LEAVE, self.owner)

    async def nodes(self, conn: asyncpg.Pool | asyncpg.Connection) -> list[NodeRecord]:
        rows = await conn.fetch(_NODES, self.seconds)
        return [NodeRecord(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]
