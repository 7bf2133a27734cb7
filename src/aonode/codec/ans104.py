"""ANS-104 data items: the signed envelope of every AO message and assignment.

Wire form (integers little-endian)::

    signature type   2 bytes        1 = Arweave RSA-4096 PSS, 2 = ed25519
    signature        512 | 64
    owner            512 | 32       RSA modulus n / ed25519 public key
    target           1 presence byte (0/1) [+ 32 bytes]
    anchor           1 presence byte (0/1) [+ 32 bytes]
    number of tags   8 bytes
    tag bytes        8 bytes
    tags             Avro array of {name: bytes, value: bytes} records
    data             the rest

The signed message is Arweave's deep hash (SHA-384) of
``["dataitem", "1", "<signature type>", owner, target, anchor, raw tag bytes,
data]``; the id is ``sha256(signature)``.

The parser is strict because its input comes straight from the network: every
length, presence byte, Avro long and the block terminator is checked, and no
byte may be left over inside the tags field.  It accepts every valid Avro
array encoding (negative block counts with a size, several blocks), since the
signature covers the raw tag bytes whatever their layout.  ``sign`` and
``build`` always write the canonical layout that arbundles and HyperBEAM
write: no tags is an empty field, otherwise one block and the terminator.

The deep hash itself is :mod:`aonode.codec.deephash`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from aonode.codec import deephash
from aonode.codec.avro_tags import (
    MAX_TAG_NAME_BYTES,
    MAX_TAG_VALUE_BYTES,
    MAX_TAGS,
    decode_tags,
    encode_tags,
)
from aonode.codec.b64 import b64url_encode
from aonode.codec.deephash import DeepHashChunk, deep_hash
from aonode.codec.item import ItemFields
from aonode.errors import InvalidMessage, InvalidSignature, UnsupportedSignature
from aonode.wallet import address_of
from aonode.wallet import verify as verify_signature

if TYPE_CHECKING:
    from aonode.wallet import Wallet

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_NAME_BYTES",
    "MAX_TAG_VALUE_BYTES",
    "SIGNATURE_LENGTHS",
    "DataItem",
    "DeepHashChunk",
    "build",
    "deep_hash",
    "encode_tags",
    "parse",
    "parse_trusted",
    "parse_verified",
    "sign",
    "sign_tags",
]


SIGNATURE_LENGTHS: dict[int, tuple[int, int]] = {1: (512, 512), 2: (64, 32)}
"""Signature type -> (signature length, owner length), for the types we verify."""

_OPTIONAL_LENGTH = 32


@dataclass(frozen=True, slots=True, repr=False)
class DataItem(ItemFields):
    """A parsed or freshly signed data item.  Make it with :func:`parse` or :func:`sign`.

    ``raw`` is the exact wire form and the only field equality looks at: the
    other fields (:class:`~aonode.codec.item.ItemFields`) are views of it, and
    the signature covers it.
    """

    raw: bytes
    # The id is read many times per request (routing, dedupe, chain, formats): hash once.
    _id_bytes: bytes = field(init=False, repr=False, compare=False)
    _id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.signature).digest()
        object.__setattr__(self, "_id_bytes", digest)
        object.__setattr__(self, "_id", b64url_encode(digest))

    @property
    def id_bytes(self) -> bytes:
        return self._id_bytes

    @property
    def id(self) -> str:
        return self._id

    @property
    def owner_address(self) -> str:
        return address_of(self.owner)

    def signature_data(self) -> bytes:
        """The 48-byte deep hash the owner signed (over the raw tag bytes, as sent)."""
        start = _tags_header_offset(self)
        size = int.from_bytes(self.raw[start + 8 : start + 16], "little")
        tag_bytes = self.raw[start + 16 : start + 16 + size]
        return deephash.signature_data(
            self.signature_type, self.owner, self.target, self.anchor, tag_bytes, self.data
        )

    def verify(self) -> bool:
        return verify_signature(
            self.signature_type, self.owner, self.signature_data(), self.signature
        )

    def __repr__(self) -> str:
        return (
            f"DataItem(id={self.id!r}, signature_type={self.signature_type}, "
            f"owner_address={self.owner_address!r}, tags={len(self.tags)}, "
            f"data={len(self.data)} bytes)"
        )


def parse(raw: bytes) -> DataItem:
    """Parse the binary form strictly; does not check the signature (see :func:`parse_verified`).

    Raises ``UnsupportedSignature`` for a signature type other than 1 or 2 and
    ``InvalidMessage`` for anything malformed.
    """
    raw = bytes(raw)
    if len(raw) < 2:
        raise InvalidMessage(f"data item is {len(raw)} bytes: too short for the signature type")
    signature_type = int.from_bytes(raw[:2], "little")
    lengths = SIGNATURE_LENGTHS.get(signature_type)
    if lengths is None:
        raise UnsupportedSignature(
            f"signature type {signature_type} is not supported (1 = Arweave RSA-4096, 2 = ed25519)"
        )
    signature_length, owner_length = lengths
    pos = 2
    signature, pos = _take(raw, pos, signature_length, "signature")
    owner, pos = _take(raw, pos, owner_length, "owner")
    target, pos = _take_optional(raw, pos, "target")
    anchor, pos = _take_optional(raw, pos, "anchor")
    header, pos = _take(raw, pos, 16, "tag count and tag bytes length")
    count = int.from_bytes(header[:8], "little")
    size = int.from_bytes(header[8:], "little")
    if count > MAX_TAGS:
        raise InvalidMessage(f"data item declares {count} tags; at most {MAX_TAGS} are allowed")
    if size > len(raw) - pos:
        raise InvalidMessage(
            f"tags field of {size} bytes at offset {pos} runs past the end of the "
            f"data item ({len(raw) - pos} bytes left)"
        )
    tags = decode_tags(raw[pos : pos + size], count)
    return DataItem(
        signature_type=signature_type,
        signature=signature,
        owner=owner,
        target=target,
        anchor=anchor,
        tags=tags,
        data=raw[pos + size :],
        raw=raw,
    )


def parse_trusted(raw: bytes, tags: Sequence[Sequence[str]]) -> DataItem:
    """Rebuild an item this node parsed already, with the ``tags`` that parse decoded.

    For a cluster hop (aonode.cluster): the worker a request landed on parsed and
    verified the item; the owner takes its tags as given instead of decoding the
    Avro block again (half the cost of a parse).  Only the field offsets are read;
    never use it on bytes from outside the node.
    """
    signature_length, owner_length = SIGNATURE_LENGTHS[int.from_bytes(raw[:2], "little")]
    pos = 2 + signature_length
    signature, owner = raw[2:pos], raw[pos : pos + owner_length]
    pos += owner_length
    target, pos = _take_optional(raw, pos, "target")
    anchor, pos = _take_optional(raw, pos, "anchor")
    size = int.from_bytes(raw[pos + 8 : pos + 16], "little")
    return DataItem(
        signature_type=int.from_bytes(raw[:2], "little"),
        signature=signature,
        owner=owner,
        target=target,
        anchor=anchor,
        tags=tuple((name, value) for name, value in tags),
        data=raw[pos + 16 + size :],
        raw=raw,
    )


def parse_verified(raw: bytes) -> DataItem:
    """Parse, then raise ``InvalidSignature`` unless the owner's signature verifies."""
    item = parse(raw)
    if not item.verify():
        raise InvalidSignature(f"data item {item.id}: signature does not verify for its owner")
    return item


def sign(
    wallet: Wallet,
    *,
    data: bytes = b"",
    tags: Sequence[tuple[str, str]] = (),
    target: bytes = b"",
    anchor: bytes = b"",
) -> DataItem:
    """Build and sign a data item with ``wallet``.

    Raises ``InvalidMessage`` for a target or anchor that is neither empty nor
    32 bytes and for tags over the ANS-104 limits, so that nothing signed here
    is refused by :func:`parse`.
    """
    _check_optional(target, "target")
    _check_optional(anchor, "anchor")
    # each (name, value) as a tuple; a pair of another length fails in encode_tags
    tag_tuple = cast("tuple[tuple[str, str], ...]", tuple(map(tuple, tags)))
    return _signed(wallet, tag_tuple, data, target, anchor)


def sign_tags(wallet: Wallet, tags: tuple[tuple[str, str], ...]) -> DataItem:
    """``sign(wallet, tags=tags)`` for tags the caller built as a tuple of pairs (an
    assignment's): no data, target or anchor to check, no tags to copy.  The tags
    are still checked against the ANS-104 limits as they are encoded."""
    return _signed(wallet, tags, b"", b"", b"")


def _signed(
    wallet: Wallet,
    tag_tuple: tuple[tuple[str, str], ...],
    data: bytes,
    target: bytes,
    anchor: bytes,
) -> DataItem:
    tag_bytes = encode_tags(tag_tuple)
    signature_type = wallet.signature_type
    owner = wallet.owner
    message = deephash.signature_data(signature_type, owner, target, anchor, tag_bytes, data)
    signature = wallet.sign(message)
    raw = _assemble(
        signature_type, signature, owner, target, anchor, len(tag_tuple), tag_bytes, data
    )
    return DataItem(
        signature_type=signature_type,
        signature=signature,
        owner=owner,
        target=target,
        anchor=anchor,
        tags=tag_tuple,
        data=data,
        raw=raw,
    )


def build(
    signature_type: int,
    signature: bytes,
    owner: bytes,
    target: bytes,
    anchor: bytes,
    tags: Sequence[tuple[str, str]],
    data: bytes,
) -> bytes:
    """The canonical wire form of an (already signed) item given field by field.

    Raises ``UnsupportedSignature`` or ``InvalidMessage`` for field lengths
    the signature type does not allow.
    """
    lengths = SIGNATURE_LENGTHS.get(signature_type)
    if lengths is None:
        raise UnsupportedSignature(
            f"signature type {signature_type} is not supported (1 = Arweave RSA-4096, 2 = ed25519)"
        )
    for name, value, expected in (
        ("signature", signature, lengths[0]),
        ("owner", owner, lengths[1]),
    ):
        if len(value) != expected:
            raise InvalidMessage(
                f"{name} must be {expected} bytes for signature type {signature_type}, "
                f"not {len(value)}"
            )
    _check_optional(target, "target")
    _check_optional(anchor, "anchor")
    tag_list = list(tags)
    tag_bytes = encode_tags(tag_list)
    return _assemble(
        signature_type, signature, owner, target, anchor, len(tag_list), tag_bytes, data
    )


# -- internals ---------------------------------------------------------------


def _assemble(
    signature_type: int,
    signature: bytes,
    owner: bytes,
    target: bytes,
    anchor: bytes,
    tag_count: int,
    tag_bytes: bytes,
    data: bytes,
) -> bytes:
    return b"".join(
        (
            signature_type.to_bytes(2, "little"),
            signature,
            owner,
            b"\x01" + target if target else b"\x00",
            b"\x01" + anchor if anchor else b"\x00",
            tag_count.to_bytes(8, "little"),
            len(tag_bytes).to_bytes(8, "little"),
            tag_bytes,
            data,
        )
    )


def _tags_header_offset(item: DataItem) -> int:
    return 4 + len(item.signature) + len(item.owner) + len(item.target) + len(item.anchor)


def _check_optional(value: bytes, name: str) -> None:
    if len(value) not in (0, _OPTIONAL_LENGTH):
        raise InvalidMessage(f"{name} must be empty or 32 bytes, not {len(value)}")


def _take(raw: bytes, pos: int, length: int, what: str) -> tuple[bytes, int]:
    end = pos + length
    if end > len(raw):
        raise InvalidMessage(
            f"data item is truncated: {what} needs {length} bytes at offset {pos}, "
            f"only {len(raw) - pos} left"
        )
    return raw[pos:end], end


def _take_optional(raw: bytes, pos: int, what: str) -> tuple[bytes, int]:
    presence, pos = _take(raw, pos, 1, f"{what} presence byte")
    if presence == b"\x00":
        return b"", pos
    if presence != b"\x01":
        raise InvalidMessage(
            f"{what} presence byte at offset {pos - 1} is {presence[0]}; it must be 0 or 1"
        )
    return _take(raw, pos, _OPTIONAL_LENGTH, what)
