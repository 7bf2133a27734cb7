"""Push to targets on other nodes: where a process is scheduled, and delivering there.

Where (:meth:`Remote.route`), in order: this node (the process is on its
schedules); the static ``scheduler_map`` (process id or scheduler address →
base URL); the process definition's ``Scheduler`` address, located through
the map, this store's ``Scheduler-Location`` records, or the location record
a known node (any URL in the map) serves at ``/~scheduler@1.0/location`` —
signature-checked and cached for its ``time-to-live``.  The definition itself
comes from this store or from a known node's ``/~message@1.0/{id}``.

Delivering (:meth:`Remote.deliver`): the signed delivery message is POSTed
as ANS-104 to ``{url}/{pid}~process@1.0/push`` (307s followed), so the
remote schedules it, computes it and pushes on, and answers with the subtree.
``push-depth`` and ``push-budget`` carry the walk's depth and message budget
across, so a ping-pong between nodes is cut by the limits like a local one.
No answer, a timeout or a 5xx is :class:`Unreachable` (retried with
exponential backoff, ``attempts`` times); a 4xx is :class:`RemoteRefused`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from aonode.errors import AONodeError, NotFound, RemoteRefused, Unreachable
from aonode.message import Message
from aonode.scheduler import location

if TYPE_CHECKING:
    from aonode.push.host import PushHost
    from aonode.push.limits import PushLimits

log = logging.getLogger("aonode.push")

Json = dict[str, Any]
ANS = {"content-type": "application/ans104", "codec-device": "ans104@1.0"}
LOOKUP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Route:
    """Where a target is scheduled: this node (``url`` None) or the node at ``url``."""

    url: str | None = None


LOCAL = Route()


@dataclass(frozen=True, slots=True)
class Answer:
    """A remote push's answer: 200 with the subtree, or 202 when it pushes asynchronously."""

    status: int
    tree: Json


def _base(url: str) -> str:
    return url.rstrip("/")


class Remote:
    """Route lookup and HTTP delivery; one connection pool per node."""

    def __init__(self, node: PushHost, limits: PushLimits) -> None:
        self._node = node
        self._limits = limits
        self._map: Mapping[str, str] = {k: _base(v) for k, v in node.scheduler_map.items()}
        self._cache: dict[str, tuple[str, float]] = {}  # pid or address → (url, expiry)
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._limits.remote_timeout, connect=5.0),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("push remote client used before Pusher.start()")
        return self._client

    def _known_nodes(self) -> Iterable[str]:
        return dict.fromkeys(self._map.values())

    def _known(self, key: str) -> str | None:
        url = self._map.get(key)
        if url is not None:
            return url
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        return None

    def _remember(self, key: str, url: str, ttl_ms: int) -> None:
        self._cache[key] = (url, time.monotonic() + ttl_ms / 1000)

    # -- where ---------------------------------------------------------------

    async def route(self, target: str) -> Route:
        """Where ``target`` is scheduled; :class:`NotFound` when nobody knows,
        :class:`Unreachable` when a node that might know could not be asked."""
        if await self._node.process_message(target) is not None:
            return LOCAL
        url = self._known(target)
        if url is not None:
            return Route(url)
        process = await self._definition(target)
        for address in process.schedulers():
            if address in self._node.addresses:
                return LOCAL  # ours, though not spawned here: scheduling says so
            url = self._known(address)
            ttl = location.DEFAULT_TTL_MS
            if url is None:
                found = await self._locate(address)
                if found is None:
                    continue
                url, ttl = found
            self._remember(target, url, ttl)
            return Route(url)
        raise NotFound(
            f"no location known for the scheduler(s) {process.schedulers()} of {target}",
            code="unknown-location",
        )

    async def _definition(self, target: str) -> Message:
        """The process message of ``target``: from this store, else from a known node."""
        stored = await self._node.store.get_message(target)
        if stored is not None:
            return Message.from_record(stored)
        unreachable: Unreachable | None = None
        for base in self._known_nodes():
            try:
                r = await self.client.get(f"{base}/~message@1.0/{target}", timeout=LOOKUP_TIMEOUT)
            except httpx.HTTPError as exc:
                unreachable = Unreachable(f"{base}: {_describe(exc)}", status=502, node=base)
                continue
            if r.status_code != 200:
                continue
            try:
                found = Message.from_json(r.json())  # ANS-104 or httpsig JSON form
            except (AONodeError, ValueError):
                continue
            if found.id == target and found.item.verify():
                return found
        if unreachable is not None:
            raise unreachable
        raise NotFound(f"unknown process {target}", code="unknown-process")

    async def _locate(self, address: str) -> tuple[str, int] | None:
        """``(url, ttl ms)`` of scheduler ``address``: this store's record, else a known node's."""
        found = await self._node.store.get_location(address)
        if found is not None:
            doc = location.location_json(*found)
            return _base(str(doc["url"])), int(doc["time-to-live"])
        unreachable: Unreachable | None = None
        for base in self._known_nodes():
            try:
                r = await self.client.get(
                    f"{base}/~scheduler@1.0/location",
                    params={"address": address},
                    timeout=LOOKUP_TIMEOUT,
                )
            except httpx.HTTPError as exc:
                unreachable = Unreachable(f"{base}: {_describe(exc)}", status=502, node=base)
                continue
            if r.status_code != 200:
                continue
            try:
                doc = r.json()
                record = Message.from_json(doc["message"])
            except (AONodeError, ValueError, KeyError, TypeError):
                continue
            if (
                record.signer != address
                or record.keys.get("type", "").lower() != "scheduler-location"
                or not record.keys.get("url")
                or not record.item.verify()
            ):
                continue
            url = _base(record.keys["url"])
            ttl = int(doc.get("time-to-live") or location.DEFAULT_TTL_MS)
            self._remember(address, url, ttl)
            return url, ttl
        if unreachable is not None:
            raise unreachable
        return None

    # -- delivering ----------------------------------------------------------

    async def deliver(
        self,
        url: str,
        target: str,
        message: Message,
        *,
        depth: int,
        result_depth: int,
        budget: int,
        attempts: int,
    ) -> Answer:
        """POST ``message`` to ``target``'s push at ``url``; retried ``attempts`` times."""
        params = {
            "push-mode": "sync",
            "result-depth": str(result_depth),
            "push-depth": str(depth),
            "push-budget": str(budget),
        }
        delay = self._limits.retry_seconds
        failure: Unreachable | None = None
        for attempt in range(1, attempts + 1):
            try:
                r = await self.client.post(
                    f"{url}/{target}~process@1.0/push",
                    params=params,
                    content=message.item.raw,
                    headers=ANS,
                )
            except httpx.TimeoutException as exc:
                failure = Unreachable(f"{url}: {_describe(exc)}", status=504, node=url)
            except httpx.HTTPError as exc:
                failure = Unreachable(f"{url}: {_describe(exc)}", status=502, node=url)
            else:
                if r.status_code in (200, 202):
                    try:
                        tree = r.json()
                    except ValueError:
                        tree = None
                    if isinstance(tree, dict):
                        return Answer(r.status_code, tree)
                    failure = Unreachable(
                        f"{url} answered {r.status_code} without a JSON tree", status=502, node=url
                    )
                elif r.status_code >= 500 or r.status_code == 429:
                    status = r.status_code if r.status_code in (502, 503, 504) else 502
                    failure = Unreachable(f"{url}: {_reason(r)}", status=status, node=url)
                else:
                    raise RemoteRefused(
                        f"{url}: {_reason(r)}", status=r.status_code, node=url, attempts=attempt
                    )
            failure.attempts = attempt
            if attempt < attempts:
                log.info("push to %s at %s: %s; retrying", target, url, failure.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._limits.retry_max_seconds)
        assert failure is not None
        raise failure


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _reason(r: httpx.Response) -> str:
    try:
        doc = orjson.loads(r.content)
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return f"{r.status_code} {doc['error'].get('code')}: {doc['error'].get('message')}"
    except orjson.JSONDecodeError:
        pass
    return f"{r.status_code} {r.text[:200]}"
