"""Scheduler-location records: where a scheduler address can be reached.

A record is a signed ``Type: Scheduler-Location`` message whose signer is the
scheduler; its ``Url`` says where to reach it and ``Time-To-Live`` (ms) how
long to trust that.  Records are ordered by ``Nonce``: only a higher nonce
replaces a stored one, so a replayed old record cannot move a scheduler back.
A record without a nonce takes the stored one + 1 (HyperBEAM's rule).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aonode.codec import ans104
from aonode.errors import InvalidMessage, NotFound
from aonode.message import Message
from aonode.store.base import LocationRecord, MessageRecord, RecordStore
from aonode.wallet import Wallet

DEFAULT_TTL_MS = 7 * 24 * 3600 * 1000


def _int_key(message: Message, key: str) -> int | None:
    raw = message.keys.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidMessage(
            f"{key} must be an integer, got {raw!r}", code="invalid-location"
        ) from None
    if value < 0:
        raise InvalidMessage(f"{key} must not be negative", code="invalid-location")
    return value


def location_json(record: LocationRecord, message: MessageRecord) -> dict[str, Any]:
    msg = Message.from_record(message)
    return {
        "address": record.address,
        "url": msg.keys.get("url", ""),
        "time-to-live": _int_key(msg, "time-to-live") or DEFAULT_TTL_MS,
        "nonce": record.nonce,
        "id": msg.id,
        "message": msg.to_json(),
    }


async def accept(store: RecordStore, message: Message) -> dict[str, Any]:
    """Validate and store a posted location record (its signature already checked)."""
    if message.keys.get("type", "").lower() != "scheduler-location":
        raise InvalidMessage(
            "a location record needs tag Type: Scheduler-Location", code="invalid-location"
        )
    url = message.keys.get("url", "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidMessage(f"Url must be an http(s) URL, got {url!r}", code="invalid-location")
    _int_key(message, "time-to-live")
    existing = await store.get_location(message.signer)
    known = existing[0].nonce if existing else -1
    nonce = _int_key(message, "nonce")
    if nonce is None:
        nonce = known + 1
    if nonce <= known:
        raise InvalidMessage(
            f"known nonce {known} is not lower than requested nonce {nonce}",
            code="stale-location",
        )
    record = LocationRecord(address=message.signer, nonce=nonce, message=message.id)
    if not await store.put_location(record, message.record()):
        raise InvalidMessage("a newer location record arrived first", code="stale-location")
    return location_json(record, message.record())


async def lookup(store: RecordStore, address: str) -> dict[str, Any]:
    found = await store.get_location(address)
    if found is None:
        raise NotFound(f"no location found for address {address}", code="unknown-location")
    return location_json(*found)


async def register_own(store: RecordStore, wallet: Wallet, url: str) -> dict[str, Any]:
    """Sign and store this node's own record (on every start, with the next nonce).

    Several nodes of one scheduler wallet may start at once on one shared store:
    a record that loses the race for a nonce is signed again with the next one.
    """
    for _attempt in range(32):
        try:
            return await _register_next(store, wallet, url)
        except InvalidMessage as exc:
            if exc.code != "stale-location":
                raise
    return await _register_next(store, wallet, url)


async def _register_next(store: RecordStore, wallet: Wallet, url: str) -> dict[str, Any]:
    existing = await store.get_location(wallet.address)
    nonce = existing[0].nonce + 1 if existing else 0
    item = ans104.sign(
        wallet,
        tags=[
            ("Data-Protocol", "ao"),
            ("Variant", "ao.N.1"),
            ("Type", "Scheduler-Location"),
            ("Url", url),
            ("Time-To-Live", str(DEFAULT_TTL_MS)),
            ("Nonce", str(nonce)),
        ],
    )
    return await accept(store, Message.from_item(item))
