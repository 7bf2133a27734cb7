"""ANS-104 bundles, and the Arweave (format 2) transaction that carries one.

This is how data items reach Arweave without a bundling service: the items
are packed into one bundle (ANS-104 binary) which becomes the data of an
ordinary Arweave transaction tagged ``Bundle-Format: binary`` and
``Bundle-Version: 2.0.0``, signed by an RSA wallet.  Gateways (and arlocal)
index each item of such a transaction under its own id.

Bundle wire form (integers little-endian, 32 bytes each)::

    item count
    count × (item size, item id)
    the items, back to back

A transaction's ``data_root`` is the root of Arweave's Merkle tree over the
data's chunks (``ar_merkle``; arweave-js ``lib/merkle``), and its signature is
RSA-PSS over the deep hash of the format-2 fields.  Everything here is pure:
no I/O, so the upload path can run it in a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from aonode.codec.ans104 import SIGNATURE_LENGTHS, deep_hash
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import InvalidMessage
from aonode.wallet import RSAWallet

BUNDLE_TAGS: tuple[tuple[str, str], ...] = (
    ("Bundle-Format", "binary"),
    ("Bundle-Version", "2.0.0"),
)

MAX_CHUNK_SIZE = 256 * 1024
MIN_CHUNK_SIZE = 32 * 1024
_NOTE_SIZE = 32


def pack(items: Sequence[bytes]) -> bytes:
    """The ANS-104 bundle of ``items`` (raw, signed data items), in this order."""
    header = [len(items).to_bytes(32, "little")]
    for raw in items:
        signature_type = int.from_bytes(raw[:2], "little")
        signature_length = SIGNATURE_LENGTHS.get(signature_type, (0, 0))[0]
        if not signature_length or len(raw) < 2 + signature_length:
            raise InvalidMessage(f"cannot bundle an item of signature type {signature_type}")
        item_id = hashlib.sha256(raw[2 : 2 + signature_length]).digest()
        header.append(len(raw).to_bytes(32, "little") + item_id)
    return b"".join(header) + b"".join(items)


def unpack(bundle: bytes) -> list[tuple[str, bytes]]:
    """``(id, raw item)`` for every item of an ANS-104 bundle."""
    if len(bundle) < 32:
        raise InvalidMessage("a bundle starts with a 32-byte item count")
    count = int.from_bytes(bundle[:32], "little")
    offset = 32 + 64 * count
    if offset > len(bundle):
        raise InvalidMessage(f"bundle header announces {count} items but is too short")
    out = []
    for i in range(count):
        entry = bundle[32 + 64 * i : 32 + 64 * (i + 1)]
        size = int.from_bytes(entry[:32], "little")
        if offset + size > len(bundle):
            raise InvalidMessage(f"bundle item {i} runs past the end of the bundle")
        out.append((b64url_encode(entry[32:]), bundle[offset : offset + size]))
        offset += size
    return out


# -- Arweave transactions ------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _note(value: int) -> bytes:
    return value.to_bytes(_NOTE_SIZE, "big")


def _chunks(data: bytes) -> list[tuple[bytes, int]]:
    """(sha256 of chunk, end offset) per chunk, split as Arweave splits data."""
    out: list[tuple[bytes, int]] = []
    cursor = 0
    rest = data
    while len(rest) >= MAX_CHUNK_SIZE:
        size = MAX_CHUNK_SIZE
        following = len(rest) - MAX_CHUNK_SIZE
        if 0 < following < MIN_CHUNK_SIZE:  # never leave a runt chunk at the end
            size = -(-len(rest) // 2)
        cursor += size
        out.append((_sha256(rest[:size]), cursor))
        rest = rest[size:]
    out.append((_sha256(rest), cursor + len(rest)))
    return out


def data_root(data: bytes) -> bytes:
    """The Merkle root Arweave computes over ``data`` (a transaction's ``data_root``)."""
    # A node: (id, max byte range).  Leaves hash (hash(chunk hash), hash(end)).
    layer = [(_sha256(_sha256(h) + _sha256(_note(end))), end) for h, end in _chunks(data)]
    while len(layer) > 1:
        nxt = []
        for i in range(0, len(layer), 2):
            if i + 1 == len(layer):
                nxt.append(layer[i])
                continue
            (left, left_end), (right, right_end) = layer[i], layer[i + 1]
            branch = _sha256(_sha256(left) + _sha256(right) + _sha256(_note(left_end)))
            nxt.append((branch, right_end))
        layer = nxt
    return layer[0][0]


def bundle_transaction(
    wallet: RSAWallet, bundle: bytes, *, last_tx: str, reward: str
) -> dict[str, Any]:
    """A signed format-2 transaction (the JSON ``POST /tx`` takes) carrying ``bundle``.

    ``last_tx`` is the anchor (``GET /tx_anchor``) and ``reward`` the fee in
    winston (``GET /price/{bytes}``).  The data travels inline.
    """
    root = data_root(bundle)
    tags = [(n.encode(), v.encode()) for n, v in BUNDLE_TAGS]
    signed = deep_hash(
        [
            b"2",
            wallet.owner,
            b"",  # target
            b"0",  # quantity
            reward.encode(),
            b64url_decode(last_tx),
            [[n, v] for n, v in tags],
            str(len(bundle)).encode(),
            root,
        ]
    )
    signature = wallet.sign(signed)
    return {
        "format": 2,
        "id": b64url_encode(_sha256(signature)),
        "last_tx": last_tx,
        "owner": b64url_encode(wallet.owner),
        "tags": [{"name": b64url_encode(n), "value": b64url_encode(v)} for n, v in tags],
        "target": "",
        "quantity": "0",
        "data": b64url_encode(bundle),
        "data_size": str(len(bundle)),
        "data_root": b64url_encode(root),
        "reward": reward,
        "signature": b64url_encode(signature),
    }
