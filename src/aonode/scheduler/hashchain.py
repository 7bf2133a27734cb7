"""The schedule's hash chain.

``chain(0) = sha256(id0)``, ``chain(n) = sha256(chain(n-1) ‖ id(n))`` over the
raw 32-byte ids.  The chain deliberately does not cover the assignment
signatures, so slots and chain values are fixed in order on the event loop
while the (slow, RSA) signatures are made in parallel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from aonode.codec.b64 import b64url_decode, b64url_encode


def next_link(previous: bytes, message_id: bytes) -> bytes:
    """The chain value after ``previous`` (``b""`` before slot 0)."""
    return hashlib.sha256(previous + message_id).digest()


def verify_chain(links: Iterable[tuple[int, str, str]]) -> tuple[int, str] | None:
    """Check ``(slot, message id, hash-chain)`` triples from slot 0 upward.

    Returns ``None`` when every link holds, else ``(slot, reason)`` for the
    first break, so ``aonode verify`` can name it.
    """
    previous = b""
    for expected_slot, (slot, message_id, chain) in enumerate(links):
        if slot != expected_slot:
            return slot, f"expected slot {expected_slot}, found slot {slot}"
        try:
            link = next_link(previous, b64url_decode(message_id))
        except ValueError:
            return slot, f"message id {message_id!r} is not base64url"
        if b64url_encode(link) != chain:
            return slot, "hash-chain does not equal sha256(previous ‖ message id)"
        previous = link
    return None
