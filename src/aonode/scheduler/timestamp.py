"""Arweave block info stamped on every assignment.

Each assignment carries the Arweave block-height, block-hash and
block-timestamp current when it was made.  Fetching them on the request path
would tie the scheduling rate and latency to a remote gateway, so a source
keeps the latest values in memory and :meth:`TimestampSource.current` only
reads them; a :class:`GatewaySource` refreshes them in a background task it
owns.

A gateway that is down or returns junk never stops the node: the last good
values (or the offline ones) keep being served and :meth:`status` says how
stale they are.  This mirrors HyperBEAM's ``ar_timestamp``, which caches the
gateway's answer and serves zeros when it has none.  Values are taken as the
gateway states them, including a lower height after a reorg: the node
reports Arweave, it does not second-guess it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

__all__ = [
    "OFFLINE_BLOCK",
    "BlockInfo",
    "GatewaySource",
    "OfflineSource",
    "TimestampSource",
    "make_source",
]

log = logging.getLogger("aonode.timestamp")


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """The Arweave block an assignment is anchored to.

    ``hash`` is the gateway's base64url ``indep_hash`` string, kept verbatim
    so that it compares equal to what any other Arweave client reads.
    """

    height: int
    hash: str
    timestamp: int


# What HyperBEAM stamps when it has no gateway: height 0, 32 zero bytes, time 0.
OFFLINE_BLOCK = BlockInfo(
    height=0,
    hash=base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode("ascii"),
    timestamp=0,
)


@runtime_checkable
class TimestampSource(Protocol):
    """Where the scheduler reads block info from.

    ``current`` is called once per assignment on the event loop, so it must be
    a plain attribute read: no I/O, no awaiting, no locks.
    """

    name: str

    def current(self) -> BlockInfo: ...

    def status(self) -> dict[str, object]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class OfflineSource:
    """Fixed zero block info, for nodes with no Arweave gateway (tests, local use)."""

    name: str = "offline"

    def current(self) -> BlockInfo:
        return OFFLINE_BLOCK

    def status(self) -> dict[str, object]:
        # Same keys as a gateway's status so that callers need no special case;
        # fixed values never go stale.
        return {
            "source": self.name,
            "url": None,
            "height": OFFLINE_BLOCK.height,
            "hash": OFFLINE_BLOCK.hash,
            "timestamp": OFFLINE_BLOCK.timestamp,
            "fresh": True,
            "age-seconds": None,
            "last-error": None,
        }

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class _BadAnswer(Exception):
    """A gateway answer we cannot use; recorded and logged, never raised out of a source."""


class GatewaySource:
    """Block info from an Arweave gateway's ``/info`` and ``/block/height/N``.

    Values are considered fresh while the latest refresh attempt succeeded and
    the last success is at most ``3 * refresh_seconds`` old: one missed
    refresh is normal jitter, a silent gateway is not.
    """

    name: str = "gateway"

    def __init__(
        self,
        url: str,
        *,
        refresh_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
        start_timeout: float = 5.0,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError("refresh_seconds must be positive")
        self.url = url.rstrip("/")
        self.refresh_seconds = refresh_seconds
        self.start_timeout = start_timeout
        self._client = client
        self._owns_client = client is None
        self._block = OFFLINE_BLOCK
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._failing = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def current(self) -> BlockInfo:
        return self._block

    def status(self) -> dict[str, object]:
        age = None if self._last_success is None else time.monotonic() - self._last_success
        fresh = age is not None and self._last_error is None and age <= 3 * self.refresh_seconds
        block = self._block
        return {
            "source": self.name,
            "url": self.url,
            "height": block.height,
            "hash": block.hash,
            "timestamp": block.timestamp,
            "fresh": fresh,
            "age-seconds": None if age is None else round(age, 3),
            "last-error": self._last_error,
        }

    async def start(self) -> None:
        """Try one refresh, then keep refreshing in the background.

        The first refresh is bounded by ``start_timeout`` so that a dead or
        black-holed gateway delays start-up by seconds, not forever.
        """
        if self._task is not None:
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.start_timeout))
        try:
            async with asyncio.timeout(self.start_timeout):
                await self.refresh_now()
        except TimeoutError:
            self._record_failure(f"TimeoutError: no answer within {self.start_timeout} s")
        self._task = asyncio.get_running_loop().create_task(
            self._refresh_forever(), name=f"timestamp-refresh {self.url}"
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # Re-raise only if *we* are being cancelled, not just the task we ended.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def refresh_now(self) -> bool:
        """Fetch the gateway's current block; return whether the values were updated.

        Failures are recorded in :meth:`status` and logged, never raised, so
        the background loop and start-up share one error path.
        """
        async with self._lock:
            try:
                block = await self._fetch()
            except (httpx.HTTPError, _BadAnswer, ValueError) as exc:
                self._record_failure(f"{type(exc).__name__}: {exc}")
                return False
            self._block = block
            self._last_success = time.monotonic()
            self._last_error = None
            if self._failing:
                log.info("gateway answers again", extra={"url": self.url, "height": block.height})
            self._failing = False
            return True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh_now()

    async def _fetch(self) -> BlockInfo:
        client = self._client
        if client is None:
            # refresh_now() before start(): use a short-lived client rather than fail.
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.start_timeout)) as own:
                return await self._fetch_with(own)
        return await self._fetch_with(client)

    async def _fetch_with(self, client: httpx.AsyncClient) -> BlockInfo:
        info = await _get_json(client, f"{self.url}/info")
        height = _int_field(info, "height", "/info")
        current = _str_field(info, "current", "/info")
        block = await _get_json(client, f"{self.url}/block/height/{height}")
        indep_hash = _str_field(block, "indep_hash", f"/block/height/{height}")
        timestamp = _int_field(block, "timestamp", f"/block/height/{height}")
        if "height" in block and block["height"] != height:
            raise _BadAnswer(f"asked for block {height}, got {block['height']!r}")
        if indep_hash != current:
            # The gateway moved on between the two calls; the block is still a
            # real block at that height, so it is a fine anchor.
            log.debug("tip moved during refresh", extra={"url": self.url, "height": height})
        return BlockInfo(height=height, hash=indep_hash, timestamp=timestamp)

    def _record_failure(self, error: str) -> None:
        self._last_error = error
        # Warn once per outage; a gateway down for hours must not flood the log.
        if self._failing:
            log.debug("gateway refresh failed", extra={"url": self.url, "error": error})
        else:
            log.warning(
                "gateway refresh failed; serving last known block info",
                extra={"url": self.url, "error": error, "height": self._block.height},
            )
        self._failing = True


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, object]:
    response = await client.get(url)
    response.raise_for_status()
    doc = response.json()
    if not isinstance(doc, dict):
        raise _BadAnswer(f"{url} did not return a JSON object")
    return doc


def _int_field(doc: dict[str, object], key: str, where: str) -> int:
    value = doc.get(key)
    # Some gateways send numbers as strings; bool is an int subclass and is never valid.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise _BadAnswer(f"{where}: {key!r} is not a non-negative integer: {value!r}")


def _str_field(doc: dict[str, object], key: str, where: str) -> str:
    value = doc.get(key)
    if isinstance(value, str) and value:
        return value
    raise _BadAnswer(f"{where}: {key!r} is not a non-empty string: {value!r}")


def make_source(gateway: str | None) -> TimestampSource:
    """The source a node uses: a gateway when configured, else the offline zeros."""
    if gateway:
        return GatewaySource(gateway)
    return OfflineSource()
