"""Arweave's deep hash (SHA-384), and the one ANS-104 signs.

An ANS-104 signature covers the deep hash of ``["dataitem", "1", "<signature
type>", owner, target, anchor, raw tag bytes, data]``.  It is on the node's hot
path twice per scheduled message (checking the client's item, signing the
assignment), so the deep hash of the fixed head of that list (the constants and
the owner) is computed once per signer, and ``sha384(b"blob<length>")`` once per
length.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import TypeAlias

__all__ = ["DeepHashChunk", "deep_hash", "signature_data"]

DeepHashChunk: TypeAlias = "bytes | Sequence[DeepHashChunk]"


def deep_hash(chunk: DeepHashChunk) -> bytes:
    """Arweave's deep hash (SHA-384) of a blob or a nested list of blobs."""
    if isinstance(chunk, bytes | bytearray | memoryview):
        return _blob_hash(bytes(chunk))
    acc = _sha384(b"list%d" % len(chunk))
    for item in chunk:
        acc = _sha384(acc + deep_hash(item))
    return acc


def _sha384(b: bytes) -> bytes:
    return hashlib.sha384(b).digest()


_sha384_new = hashlib.sha384
# sha384(b"blob<length>") by length: the first half of every blob's deep hash,
# the same for every target, anchor (32 bytes) and common tag/data length.
_BLOB_TAGS: dict[int, bytes] = {}
_BLOB_TAGS_UPTO = 2048  # lengths kept (at most this many 48-byte entries)


def _blob_hash(b: bytes) -> bytes:
    tag = _BLOB_TAGS.get(len(b)) or _blob_hash_tag(len(b))
    return _sha384_new(tag + _sha384_new(b).digest()).digest()


def _blob_hash_tag(n: int) -> bytes:
    tag = _sha384_new(b"blob%d" % n).digest()
    if n < _BLOB_TAGS_UPTO:
        _BLOB_TAGS[n] = tag
    return tag


_EMPTY_BLOB = _blob_hash(b"")


@lru_cache(maxsize=64)
def _head_hash(signature_type: int, owner: bytes) -> bytes:
    # Deep-hash accumulator after the first four of the eight list elements.
    acc = _sha384(b"list8")
    for chunk in (b"dataitem", b"1", str(signature_type).encode("ascii"), owner):
        acc = _sha384(acc + _blob_hash(chunk))
    return acc


def signature_data(
    signature_type: int,
    owner: bytes,
    target: bytes,
    anchor: bytes,
    tag_bytes: bytes,
    data: bytes,
) -> bytes:
    """The 48 bytes an ANS-104 item's owner signs (``tag_bytes``: the raw tag field)."""
    acc = _head_hash(signature_type, owner)
    new, tags = _sha384_new, _BLOB_TAGS
    for chunk in (target, anchor, tag_bytes, data):
        if chunk:  # _blob_hash inline: four times per item, twice per scheduled message
            head = tags.get(len(chunk)) or _blob_hash_tag(len(chunk))
            acc = new(acc + new(head + new(chunk).digest()).digest()).digest()
        else:
            acc = new(acc + _EMPTY_BLOB).digest()
    return acc
