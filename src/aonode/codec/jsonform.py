"""The JSON form of an ANS-104 data item, as the HTTP API sends and accepts it.

::

    {"signature_type": 1, "signature": B64, "owner": B64, "target": B64 | "",
     "anchor": B64 | "", "tags": [{"name": S, "value": S}], "data": B64}

(B64 = unpadded base64url.)  An incoming JSON item is turned back into the
binary form with :func:`aonode.codec.ans104.build` and then parsed by the
binary parser, so there is exactly one set of validity rules and one
signature check for both forms.  The binary form rebuilt is the canonical one;
an item whose original tags used another valid Avro layout cannot be carried
through JSON with its signature intact.

An optional ``"id"`` member is accepted when it equals the item's id, so a
client may post back what it read.
"""

from __future__ import annotations

from collections.abc import Mapping

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import InvalidMessage

__all__ = ["from_json", "to_json"]

_REQUIRED = ("signature_type", "signature", "owner", "target", "anchor", "tags", "data")
_ALLOWED = frozenset((*_REQUIRED, "id"))


def to_json(item: ans104.DataItem) -> dict[str, object]:
    """The JSON form; ``from_json(to_json(item))`` gives back an equal item."""
    return {
        "signature_type": item.signature_type,
        "signature": b64url_encode(item.signature),
        "owner": b64url_encode(item.owner),
        "target": b64url_encode(item.target),
        "anchor": b64url_encode(item.anchor),
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
    signature_type = obj["signature_type"]
    if isinstance(signature_type, bool) or not isinstance(signature_type, int):
        raise InvalidMessage(f"'signature_type' must be an integer, not {_kind(signature_type)}")
    raw = ans104.build(
        signature_type,
        _b64_member(obj, "signature"),
        _b64_member(obj, "owner"),
        _b64_member(obj, "target"),
        _b64_member(obj, "anchor"),
        _tags_member(obj["tags"]),
        _b64_member(obj, "data"),
    )
    item = ans104.parse(raw)
    if "id" in obj and obj["id"] != item.id:
        raise InvalidMessage(f"'id' is {obj['id']!r} but the item's id is {item.id!r}")
    return item


def _b64_member(obj: Mapping[object, object], key: str) -> bytes:
    value = obj[key]
    if not isinstance(value, str):
        raise InvalidMessage(f"{key!r} must be a base64url string, not {_kind(value)}")
    try:
        return b64url_decode(value)
    except ValueError as exc:
        raise InvalidMessage(f"{key!r} is not base64url: {exc}") from None


def _tags_member(value: object) -> list[tuple[str, str]]:
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
