"""The fields of a data item, declared once for every codec.

An AO message reads as an ANS-104 data item whatever its wire form: ANS-104
bytes (:class:`~aonode.codec.ans104.DataItem`), an RFC 9421 request
(:class:`~aonode.codec.httpsig.HttpSigItem`), or the JSON form of the HTTP API
(:mod:`aonode.codec.jsonform`).  :class:`ItemFields` is those fields, in wire
order; each one's ``json`` metadata says how the JSON form writes it, and the
JSON member names are the field names.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, Literal

__all__ = ["ITEM_FIELDS", "ItemFields", "JsonKind", "json_kind"]

JsonKind = Literal["int", "b64", "tags"]
"""``int``: a JSON integer; ``b64``: unpadded base64url; ``tags``: ``[{"name", "value"}]``."""


def _json(kind: JsonKind) -> dict[str, JsonKind]:
    return {"json": kind}


@dataclass(frozen=True, slots=True)
class ItemFields:
    """What every signed message reads as; subclasses add their wire form ``raw``.

    These are views of the wire form, so they never take part in equality."""

    signature_type: int = field(compare=False, metadata=_json("int"))
    signature: bytes = field(compare=False, metadata=_json("b64"))
    owner: bytes = field(compare=False, metadata=_json("b64"))
    target: bytes = field(compare=False, metadata=_json("b64"))
    anchor: bytes = field(compare=False, metadata=_json("b64"))
    tags: tuple[tuple[str, str], ...] = field(compare=False, metadata=_json("tags"))
    data: bytes = field(compare=False, metadata=_json("b64"))


ITEM_FIELDS: tuple[Field[Any], ...] = fields(ItemFields)
"""The data-item fields in wire order (also the JSON form's members, in its order)."""


def json_kind(item_field: Field[Any]) -> JsonKind:
    kind: JsonKind = item_field.metadata["json"]
    return kind
