"""A signed AO message, as the scheduler sees it.

A :class:`Message` wraps a verified wire item (today: an ANS-104 data item)
and exposes its *committed* keys: everything a signature covers.  For ANS-104
that is every tag, the target, the anchor and the data, so the committed view
is the whole item; other codecs (RFC 9421) may cover fewer keys, and only
committed keys ever reach an assignment.

Keys are case-insensitive and reported in lowercase (tag ``Action`` is key
``action``); when a tag name repeats, the first value is the key's value (the
full ordered tag list stays available for formats that need it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aonode.codec import ans104, httpsig, jsonform
from aonode.codec.b64 import b64url_encode
from aonode.codec.wire import MessageRecord

SignedItem: TypeAlias = ans104.DataItem | httpsig.HttpSigItem
"""A verified wire form: an ANS-104 data item or an RFC 9421 signed request."""


@dataclass(frozen=True, slots=True)
class Message:
    """An immutable, signature-checked message with its committed keys."""

    item: SignedItem
    keys: Mapping[str, str]
    # the target's and anchor's base64url, encoded once (keys, process_id, formats
    # and the JSON form read them)
    _target: str | None = field(init=False, repr=False, compare=False)
    _anchor: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        item = self.item
        target, anchor = item.target, item.anchor
        object.__setattr__(self, "_target", b64url_encode(target) if target else None)
        object.__setattr__(self, "_anchor", b64url_encode(anchor) if anchor else "")

    @classmethod
    def from_item(cls, item: SignedItem) -> Message:
        keys: dict[str, str] = {}
        for name, value in item.tags:
            keys.setdefault(name.lower(), value)
        message = cls(item=item, keys=keys)
        if message._target is not None:
            keys.setdefault("target", message._target)
        if message._anchor:
            keys.setdefault("anchor", message._anchor)
        return message

    @classmethod
    def from_record(cls, record: MessageRecord) -> Message:
        """Rebuild from the store (already verified when it was accepted)."""
        if record.codec == httpsig.CODEC:
            return cls.from_item(httpsig.from_raw(record.raw))
        return cls.from_item(ans104.parse(record.raw))

    @classmethod
    def from_json(cls, obj: object) -> Message:
        """Parse either JSON form (not verified: call ``item.verify()``)."""
        if isinstance(obj, Mapping) and obj.get("codec") == httpsig.DEVICE:
            return cls.from_item(httpsig.from_json(obj))
        return cls.from_item(jsonform.from_json(obj))

    def to_json(self) -> dict[str, Any]:
        """The JSON form: a data item (API.md), or ``{"codec": "httpsig@1.0", ...}``."""
        if isinstance(self.item, httpsig.HttpSigItem):
            return self.item.to_json()
        return jsonform.to_json_encoded(self.item, target=self._target or "", anchor=self._anchor)

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def id_bytes(self) -> bytes:
        return self.item.id_bytes

    @property
    def signer(self) -> str:
        """The committer's address (b64url(sha256(owner)))."""
        return self.item.owner_address

    @property
    def target(self) -> str | None:
        return self._target

    @property
    def is_process(self) -> bool:
        return self.keys.get("type", "").lower() == "process"

    def process_id(self, query_target: str | None = None) -> str | None:
        """The process this message is for (API.md: self, else target, else query)."""
        if self.is_process:
            return self.id
        return self.target or query_target or None

    def schedulers(self) -> list[str]:
        """Scheduler addresses named by ``scheduler`` (else ``scheduler-location``).

        Quotes are dropped and the value is split on commas, as HyperBEAM
        parses it, so ``"A","B"`` and ``A, B`` both name A and B.
        """
        raw = self.keys.get("scheduler") or self.keys.get("scheduler-location") or ""
        parts = (p.strip() for p in raw.replace('"', "").split(","))
        return [p.split("?", 1)[0] for p in parts if p]

    def record(self) -> MessageRecord:
        codec = httpsig.CODEC if isinstance(self.item, httpsig.HttpSigItem) else "ans104"
        return MessageRecord(id=self.id, raw=self.item.raw, codec=codec)

    def committed(self) -> dict[str, str]:
        """The committed (signed) keys; for ANS-104, every key of the item."""
        return dict(self.keys)
