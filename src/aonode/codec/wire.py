"""A message's wire form kept by id: what the store holds and :class:`~aonode.message.Message`
is rebuilt from.

It lives with the codecs, not the store, because it is a value both sides share: the
message layer must not import the store (DESIGN.md, dependency rules), and the store
keeps these without knowing how to parse them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A signed message, kept by id.  ``raw`` is its wire form (ANS-104 bytes, or the
    stored form of an RFC 9421 request when ``codec`` is ``httpsig``)."""

    id: str
    raw: bytes
    codec: str = "ans104"
