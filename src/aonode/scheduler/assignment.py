"""Assignments: what a slot says, and the scheduler signatures over it.

An assignment's keys are those of seed 001 (``type, data-protocol, variant,
process, epoch, slot, block-height, block-hash, block-timestamp, timestamp,
hash-chain, path``) plus ``message`` (the body's id).  Each scheduler wallet
commits to them with an ANS-104 data item (empty data) whose tags are exactly
those keys, so any ANS-104 library can verify a commitment without knowing
aonode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import IntegrityError
from aonode.message import Message
from aonode.store.base import AssignmentRecord, StoredSlot
from aonode.wallet import Wallet

VARIANT = "ao.N.1"
DATA_PROTOCOL = "ao"
EPOCH = "0"


@dataclass(frozen=True, slots=True)
class Header:
    """The signed keys of an assignment (everything but body and signatures)."""

    process: str
    slot: int
    block_height: int
    block_hash: str
    block_timestamp: int
    timestamp: int
    hash_chain: str
    path: str
    message: str

    def tags(self) -> tuple[tuple[str, str], ...]:
        """The commitment item's tags, in a fixed order."""
        return (
            ("Type", "Assignment"),
            ("Data-Protocol", DATA_PROTOCOL),
            ("Variant", VARIANT),
            ("Process", self.process),
            ("Epoch", EPOCH),
            ("Slot", str(self.slot)),
            ("Block-Height", str(self.block_height)),
            ("Block-Hash", self.block_hash),
            ("Block-Timestamp", str(self.block_timestamp)),
            ("Timestamp", str(self.timestamp)),
            ("Hash-Chain", self.hash_chain),
            ("Path", self.path),
            ("Message", self.message),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "Assignment",
            "data-protocol": DATA_PROTOCOL,
            "variant": VARIANT,
            "process": self.process,
            "epoch": EPOCH,
            "slot": self.slot,
            "block-height": self.block_height,
            "block-hash": self.block_hash,
            "block-timestamp": self.block_timestamp,
            "timestamp": self.timestamp,
            "hash-chain": self.hash_chain,
            "path": self.path,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Header:
        return cls(
            process=doc["process"],
            slot=int(doc["slot"]),
            block_height=int(doc["block-height"]),
            block_hash=doc["block-hash"],
            block_timestamp=int(doc["block-timestamp"]),
            timestamp=int(doc["timestamp"]),
            hash_chain=doc["hash-chain"],
            path=doc["path"],
            message=doc["message"],
        )


@dataclass(frozen=True, slots=True)
class Commitment:
    """One scheduler wallet's signature over a header, as an ANS-104 item."""

    committer: str
    id: str
    raw: bytes

    def to_json(self) -> dict[str, str]:
        return {
            "committer": self.committer,
            "type": "ans104",
            "id": self.id,
            "raw": b64url_encode(self.raw),
        }


def commit(header: Header, wallets: Sequence[Wallet]) -> tuple[Commitment, ...]:
    """Sign ``header`` with every wallet (CPU-bound; safe to run in a thread)."""
    tags = header.tags()
    out = []
    for wallet in wallets:
        item = ans104.sign_tags(wallet, tags)
        out.append(Commitment(committer=wallet.address, id=item.id, raw=item.raw))
    return tuple(out)


def check_commitment(header: Header, commitment: Commitment) -> str | None:
    """``None`` if ``commitment`` is a valid signature over exactly ``header``."""
    try:
        item = ans104.parse(commitment.raw)
    except Exception as exc:  # any parse failure is a broken commitment
        return f"commitment is not a data item: {exc}"
    if item.id != commitment.id:
        return "commitment id does not match its signature"
    if item.owner_address != commitment.committer:
        return "commitment committer does not match its owner"
    if item.tags != header.tags():
        return "commitment tags do not match the assignment"
    if not item.verify():
        return "commitment signature does not verify"
    return None


@dataclass(frozen=True, slots=True)
class Assignment:
    """A complete, signed assignment with its body message.

    ``document`` (the JSON of every key but ``body``) is serialised once, when
    the assignment is made — in the signing thread for RSA — and reused for
    the store row and every reply.
    """

    header: Header
    commitments: tuple[Commitment, ...]
    body: Message
    document: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.document:
            object.__setattr__(self, "document", orjson.dumps(self.head_json()))

    @property
    def id(self) -> str:
        return self.commitments[0].id if self.commitments else ""

    @property
    def slot(self) -> int:
        return self.header.slot

    def head_json(self) -> dict[str, Any]:
        doc = self.header.to_json()
        doc["id"] = self.id
        doc["commitments"] = [c.to_json() for c in self.commitments]
        return doc

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = orjson.loads(self.document)
        doc["body"] = self.body.to_json()
        return doc

    def json_bytes(self) -> bytes:
        """The full assignment JSON, spliced from the cached document."""
        return b"".join((self.document[:-1], b',"body":', orjson.dumps(self.body.to_json()), b"}"))

    def record(self) -> AssignmentRecord:
        return AssignmentRecord(
            process=self.header.process,
            slot=self.header.slot,
            message=self.header.message,
            hash_chain=self.header.hash_chain,
            document=self.document,
        )

    @classmethod
    def from_stored(cls, stored: StoredSlot) -> Assignment:
        try:
            doc = orjson.loads(stored.assignment.document)
            header = Header.from_json(doc)
            commitments = tuple(
                Commitment(committer=c["committer"], id=c["id"], raw=b64url_decode(c["raw"]))
                for c in doc["commitments"]
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise IntegrityError(
                f"stored assignment {stored.assignment.process}/{stored.assignment.slot} "
                f"is unreadable: {exc}"
            ) from exc
        return cls(
            header=header,
            commitments=commitments,
            body=Message.from_record(stored.body),
            document=stored.assignment.document,
        )
