"""The JSON form of an ANS-104 data item, as the HTTP API sends and accepts it.

::

    {"signature_type": 1, "signature": B64, "owner": B64, "target": B64 | "",
     "anchor": B64 | "", "tags": [{"name": S, "value": S}], "data": B64}

(B64 = unpadded base64url; the members and how each is written are
:data:`aonode.codec.item.ITEM_FIELDS`.)  An incoming JSON item is turned back into the
binary form with :func:`aonode.codec.ans104.build` and then parsed by the
binary parser, so there is exactly one set of validity rules and one
signature check for both forms.  The binary form rebuilt is the canonical one;
an item whose original tags used another valid Avro layout cannot be carried
through JSON with its signature intact.

An optional ``"id"`` member is accepted when it equals the item's id, so a
client may post back what it read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.codec.item import ITEM_FIELDS, ItemFields, JsonKind, json_kind
from aonode.errors import InvalidMessage

__all__ = ["from_json", "to_json", "to_json_encoded"]

_REQUIRED = tuple(f.name for f in ITEM_FIELDS)
_ALLOWED = frozenset((*_REQUIRED, "id"))


def to_json(item: ItemFields) -> dict[str, object]:
    """The JSON form; ``from_json(to_json(item))`` gives back an equal item."""
    return {name: encode(getattr(item, name)) for name, encode in _ENCODERS}


def to_json_encoded(item: ItemFields, *, target: str, anchor: str) -> dict[str, object]:
    """``to_json(item)`` given the target and anchor already in base64url (as a
    :class:`~aonode.message.Message` keeps them): one reply per scheduled message."""
    return {
        "signature_type": item.signature_type,
        "signature": b64url_encode(item.signature),
        "owner": b64url_encode(item.owner),
        "target": target,
        "anchor": anchor,
        "tags": [{"name": name, "value": value} for name, value in item.tags],
        "data": b64url_encode(item.data),
    }


def from_json(obj: object) -> ans104.DataItem:
    """Parse the JSON form (does not verify; use ``item.verify()``).

    Any shape error raises ``InvalidMessage`` naming the member at fault; an
    unknown signature type raises ``UnsupportedSignature``.
    """
    if not isinstance(obj, Mapping):
        raise InvalidMessage(f"a JSON data item must be an object, not {_kind(obj)}")
    missing = [key for key in _REQUIRED if key not in obj]
    if missing:
        raise InvalidMessage(f"JSON data item is missing {', '.join(map(repr, missing))}")
    unknown = sorted(str(key) for key in obj if key not in _ALLOWED)
    if unknown:
        raise InvalidMessage(f"JSON data item has unknown member(s) {', '.join(unknown)}")
    values = {f.name: _DECODE[json_kind(f)](f.name, obj[f.name]) for f in ITEM_FIELDS}
    item = ans104.parse(ans104.build(**values))  # type: ignore[arg-type]
    if "id" in obj and obj["id"] != item.id:
        raise InvalidMessage(f"'id' is {obj['id']!r} but the item's id is {item.id!r}")
    return item


def _int_member(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"{key!r} must be an integer, not {_kind(value)}")
    return value


def _b64_member(key: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidMessage(f"{key!r} must be a base64url string, not {_kind(value)}")
    try:
        return b64url_decode(value)
    except ValueError as exc:
        raise InvalidMessage(f"{key!r} is not base64url: {exc}") from None


def _tags_member(_key: str, value: object) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise InvalidMessage(f"'tags' must be a list, not {_kind(value)}")
    tags = []
    for index, tag in enumerate(value):
        if not isinstance(tag, Mapping) or set(tag) != {"name", "value"}:
            raise InvalidMessage(f"tags[{index}] must be an object with exactly 'name' and 'value'")
        name, val = tag["name"], tag["value"]
        if not isinstance(name, str) or not isinstance(val, str):
            raise InvalidMessage(f"tags[{index}] name and value must be strings")
        tags.append((name, val))
    return tags


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _encode_tags(tags: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in tags]


_ENCODE: dict[JsonKind, Callable[[Any], object]] = {
    "int": int,
    "b64": b64url_encode,
    "tags": _encode_tags,
}
# (member, its encoder) in wire order, looked up once
_ENCODERS = tuple((f.name, _ENCODE[json_kind(f)]) for f in ITEM_FIELDS)
_DECODE: dict[JsonKind, Callable[[str, object], object]] = {
    "int": _int_member,
    "b64": _b64_member,
    "tags": _tags_member,
}
