"""Uploads of the schedule to Arweave (``remote_confirmation``; seed 001 note 5).

**What is uploaded.**  An assignment is already a signed ANS-104 data item:
each scheduler wallet's commitment (``scheduler/assignment.py``) is an item
whose tags are the assignment's keys (process, slot, hash-chain, message id,
…).  So the upload unit of slot N is its commitment item(s), unchanged (the
assignment id is the first one's id), plus the message the slot carries, as
the raw ANS-104 bytes the client signed.  Nothing is re-signed, so every id
the node handed out is the id on Arweave.  Messages in another codec
(HTTP signatures) are not data items and are not uploaded; their
assignment, which names them by id, is.

**How.**  Many slots (of many processes) go up together as one ANS-104 bundle
inside one Arweave format-2 transaction signed by the node's RSA wallet
(``codec/bundle.py``), posted to ``{target}/tx`` — what bundlers do, and what
an Arweave node (and arlocal, which indexes each bundled item by id) accepts.
A 200 from the target is acceptance.  A batch is bounded by
:attr:`UploadOptions.batch_bytes` and :attr:`UploadOptions.batch_slots`;
whatever arrives while a batch is in flight goes into the next one, so
batches grow with load (as group commit does).  An unreachable or refusing
target is retried with exponential backoff; the error is in the status.

**Durability, once.**  The backlog is the schedule itself: per process, a
record (kind ``upload``, key the process id) holds ``next``, the first slot
the target has not accepted.  Everything stored at or above it is pending.
Because an assignment is pending from the moment its row is durable, there is
no window in which an acknowledged assignment is stored but not in the
backlog.  The watermark is moved only after the target accepted, so after a
kill -9 whatever was stored but not accepted is uploaded on restart.  Slots
are uploaded in order and each exactly once, except for the last batch before
a crash if the target accepted it but the watermark was not yet written: it
is sent again, with the same item ids (items are never re-signed), so the
target holds each item once.

``remote_confirmation`` waits on :meth:`Uploader.wait`, which completes once
the watermark passed the slot; other modes never wait (``confirm.py`` decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from aonode.codec.b64 import b64url_decode
from aonode.codec.bundle import bundle_transaction, pack
from aonode.errors import ConfigError
from aonode.store.base import Ownership, Record, RecordStore, ScheduleReader, Store
from aonode.wallet import RSAWallet, Wallet

if TYPE_CHECKING:
    from aonode.config import NodeConfig

log = logging.getLogger("aonode.upload")

KIND = "upload"


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """Batch bounds and retry pacing.

    A target takes time per item (arlocal about 25-50 ms: it indexes each
    item in SQLite), so a bundle is bounded in slots as well as bytes: the
    request must end well within ``timeout``, or a retry would send the
    bundle a second time while the target is still storing the first.
    """

    batch_bytes: int = 4 * 1024 * 1024  # one bundle; an item larger than this goes alone
    batch_slots: int = 100
    retry_min: float = 0.2  # seconds before the first retry; doubles up to retry_max
    retry_max: float = 30.0
    timeout: float = 120.0  # per HTTP request to the target


class TargetError(Exception):
    """The target did not accept an upload (unreachable, timed out, or refused)."""


class Target(Protocol):
    url: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, items: list[bytes]) -> str:
        """Upload ``items`` (raw data items); the id under which the target took them."""
        ...


class ArweaveTarget:
    """An Arweave node (or arlocal): a bundle in a transaction, ``POST /tx``."""

    def __init__(self, url: str, wallet: RSAWallet, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.wallet = wallet
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(base_url=self.url, timeout=self._timeout)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, items: list[bytes]) -> str:
        assert self._client is not None, "start() the target first"
        bundle = pack(items)
        try:
            anchor = await self._text("/tx_anchor")
            reward = await self._text(f"/price/{len(bundle)}")
            tx = await asyncio.to_thread(
                bundle_transaction, self.wallet, bundle, last_tx=anchor, reward=reward
            )
            r = await self._client.post(
                "/tx", content=orjson.dumps(tx), headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TargetError(f"{self.url} is unreachable: {exc!r}") from None
        # 208: an Arweave node already has this transaction
        if r.status_code not in (200, 202, 208):
            raise TargetError(
                f"{self.url}/tx refused the upload: {r.status_code} {r.text[:200].strip()}"
            )
        return str(tx["id"])

    async def _text(self, path: str) -> str:
        assert self._client is not None
        r = await self._client.get(path)
        if r.status_code != 200:
            raise TargetError(f"{self.url}{path} answered {r.status_code} {r.text[:200].strip()}")
        return r.text.strip()


def upload_wallet(wallets: list[Wallet]) -> RSAWallet:
    """Arweave transactions are RSA: the first RSA wallet of the node signs them."""
    for w in wallets:
        if isinstance(w, RSAWallet):
            return w
    raise ConfigError(
        "an upload target needs an Arweave RSA wallet to sign bundle transactions; "
        "the node's wallets are all ed25519"
    )


@dataclass(slots=True)
class _Batch:
    items: list[bytes] = field(default_factory=list)
    size: int = 0
    slots: int = 0
    last: dict[str, int] = field(default_factory=dict)  # process → last slot in the batch
    messages: set[str] = field(default_factory=set)  # a message on two processes goes once


class UploadStore(ScheduleReader, RecordStore, Protocol):
    """What the uploader uses of the store: schedule reads and its watermark records."""


class Uploader:
    """Uploads every durable assignment to the target; see the module docstring."""

    def __init__(
        self,
        store: UploadStore,
        target: Target,
        *,
        options: UploadOptions | None = None,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.options = options or UploadOptions()
        self._owns = owns  # a shared store: only upload processes this node holds
        self._next: dict[str, int] = {}  # first slot the target has not accepted
        self._latest: dict[str, int] = {}  # highest durable slot known
        self._refresh: set[str] = set()  # processes to re-read from the store
        self._unsaved: set[str] = set()  # watermarks moved but not yet durable
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.uploaded = 0
        self.bundles = 0
        self.last_tx: str | None = None
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------

    async def start(self, *, scan: bool = True, owns: Callable[[str], bool] | None = None) -> None:
        """Load the watermarks; with ``scan``, find every stored process's backlog.

        ``owns`` (a cluster worker's processes): only those are uploaded, so
        each backlog left by a previous run is resumed by one worker.
        """
        if owns is not None:
            held = self._owns
            self._owns = owns if held is None else lambda p: held(p) and owns(p)
        await self.target.start()
        for record in await self.store.records(KIND):
            self._next[record.key] = int(orjson.loads(record.value)["next"])
        if scan:
            mine = self._owns
            self._refresh.update(p for p in await self.store.processes() if mine is None or mine(p))
        self._task = asyncio.create_task(self._run(), name="uploader")
        self._wake.set()

    async def stop(self) -> None:
        """Stop uploading; the backlog stays durable and resumes on the next start."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._save()
        for waiters in self._waiters.values():
            for _, fut in waiters:
                fut.cancel()
        self._waiters.clear()
        await self.target.close()

    # -- what the scheduler tells us ----------------------------------------

    def watch(self, process: str) -> None:
        """Look at ``process``'s backlog again (its scheduler started here)."""
        self._refresh.add(process)
        self._wake.set()

    def stored(self, process: str, slot: int) -> None:
        """Slot ``slot`` of ``process`` is durable: upload it."""
        if slot > self._latest.get(process, -1):
            self._latest[process] = slot
        self._wake.set()

    def wait(self, process: str, slot: int) -> asyncio.Future[None]:
        """A future that completes once the target accepted ``slot`` of ``process``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._next.get(process, 0) > slot:
            fut.set_result(None)
        else:
            self._waiters.setdefault(process, []).append((slot, fut))
        return fut

    def status(self) -> dict[str, Any]:
        behind = {
            p: last - self._next.get(p, 0) + 1
            for p, last in self._latest.items()
            if self._owns is None or self._owns(p)
        }
        return {
            "target": self.target.url,
            "pending": sum(n for n in behind.values() if n > 0),
            "processes-behind": sum(1 for n in behind.values() if n > 0),
            "uploaded": self.uploaded,
            "bundles": self.bundles,
            "last-tx": self.last_tx,
            "last-error": self.last_error,
        }

    # -- the upload loop ----------------------------------------------------

    async def _run(self) -> None:
        delay = self.options.retry_min
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._reread()
                await self._save()
                batch = await self._collect()
                if batch.slots == 0:
                    continue
                tx = await self.target.post(batch.items)
            except Exception as exc:  # keep going: the backlog is durable
                if not isinstance(exc, TargetError):
                    log.exception("upload round failed")
                self.last_error = str(exc)
                log.warning("upload to %s failed (retry in %.1fs): %s", self.target.url, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.options.retry_max)
                self._wake.set()
                continue
            delay = self.options.retry_min
            self.last_error, self.last_tx = None, tx
            self.bundles += 1
            self.uploaded += batch.slots
            for process, last in batch.last.items():
                self._advance(process, last + 1)
            self._wake.set()  # more may be pending (the batch was bounded, or new slots)

    async def _reread(self) -> None:
        while self._refresh:
            process = next(iter(self._refresh))
            record = await self.store.get_record(KIND, process)
            latest = await self.store.latest(process)
            self._refresh.discard(process)
            if record is not None:  # (on a shared store, another node may have moved it)
                done = int(orjson.loads(record.value)["next"])
                if done > self._next.get(process, 0):
                    self._next[process] = done
                    self._release(process)
            if latest is not None:
                self.stored(process, latest.slot)

    def _advance(self, process: str, nxt: int) -> None:
        self._next[process] = nxt
        self._unsaved.add(process)
        self._release(process)

    def _release(self, process: str) -> None:
        """Complete the waits the watermark has passed."""
        nxt = self._next.get(process, 0)
        waiting = self._waiters.get(process, [])
        keep = []
        for slot, fut in waiting:
            if slot < nxt:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((slot, fut))
        if keep:
            self._waiters[process] = keep
        else:
            self._waiters.pop(process, None)

    async def _save(self) -> None:
        """Make moved watermarks durable (a crash before this only re-sends a batch)."""
        while self._unsaved:
            process = next(iter(self._unsaved))
            value = orjson.dumps({"next": self._next[process]})
            await self.store.put_record(Record(KIND, process, value))
            self._unsaved.discard(process)

    async def _collect(self) -> _Batch:
        batch = _Batch()
        opts = self.options
        for process in list(self._latest):
            if batch.slots >= opts.batch_slots or batch.size >= opts.batch_bytes:
                break
            if self._owns is not None and not self._owns(process):
                continue
            first, last = self._next.get(process, 0), self._latest[process]
            if last < first:
                continue
            # fairness: the next batch starts with another process
            self._latest[process] = self._latest.pop(process)
            rows = await self.store.slots(process, first, last, opts.batch_slots - batch.slots)
            for row in rows:
                items = _items(row.assignment.document)
                if row.body.codec == "ans104" and row.body.id not in batch.messages:
                    batch.messages.add(row.body.id)
                    items.append(row.body.raw)
                size = sum(len(i) for i in items)
                if batch.slots and batch.size + size > opts.batch_bytes:
                    return batch
                batch.items.extend(items)
                batch.size += size
                batch.slots += 1
                batch.last[process] = row.assignment.slot
        return batch


def _items(document: bytes) -> list[bytes]:
    """The commitment items (signed ANS-104) of a stored assignment document."""
    doc = orjson.loads(document)
    return [b64url_decode(c["raw"]) for c in doc["commitments"]]


def make_uploader(config: NodeConfig, wallets: list[Wallet], store: Store) -> Uploader | None:
    """The node's uploader, or ``None`` when no upload target is configured."""
    if not config.upload_url:
        return None
    options = UploadOptions()
    target = ArweaveTarget(config.upload_url, upload_wallet(wallets), timeout=options.timeout)
    owns = store.holds if isinstance(store, Ownership) else None
    return Uploader(store, target, options=options, owns=owns)
