"""The JSON data-item form, and the strict base64url it is written in."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aonode.codec import ans104, jsonform
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.codec.item import ITEM_FIELDS, ItemFields
from aonode.errors import InvalidMessage, UnsupportedSignature
from aonode.message import Message
from aonode.wallet import Wallet


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# -- base64url ----------------------------------------------------------------------


RFC4648_VECTORS = [
    (b"", ""),
    (b"f", "Zg"),
    (b"fo", "Zm8"),
    (b"foo", "Zm9v"),
    (b"foob", "Zm9vYg"),
    (b"fooba", "Zm9vYmE"),
    (b"foobar", "Zm9vYmFy"),
    (b"\xfb\xff", "-_8"),  # '+/' in standard base64
]


@pytest.mark.parametrize(("raw", "text"), RFC4648_VECTORS)
def test_b64url_matches_rfc4648_unpadded(raw: bytes, text: str) -> None:
    assert b64url_encode(raw) == text
    assert b64url_decode(text) == raw
    assert b64url_decode(text + "=" * (-len(text) % 4)) == raw  # padded form too


@pytest.mark.parametrize(
    "text",
    ["+_8", "-/8", "Zg=", "Zm9v=", "Zg===", "=", "====", "Z", "Zh", "Zm9", " Zg", "Zg\n", "Zé"],
    ids=[
        "plus",
        "slash",
        "short-pad",
        "pad-on-full-group",
        "long-pad",
        "pad-only",
        "four-pads",
        "one-char",
        "trailing-bits-2",
        "trailing-bits-3",
        "space",
        "newline",
        "non-ascii",
    ],
)
def test_b64url_decode_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


@given(st.binary(max_size=200))
def test_b64url_round_trip(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert "=" not in text
    assert b64url_decode(text) == raw


# -- to_json / from_json ------------------------------------------------------------


def test_to_json_shape(signer: Wallet) -> None:
    item = ans104.sign(
        signer, data=b"hi", tags=[("Action", "Eval"), ("Empty", "")], target=b"\x01" * 32
    )
    assert jsonform.to_json(item) == {
        "signature_type": signer.signature_type,
        "signature": b64(item.signature),
        "owner": b64(signer.owner),
        "target": b64(b"\x01" * 32),
        "anchor": "",
        "tags": [{"name": "Action", "value": "Eval"}, {"name": "Empty", "value": ""}],
        "data": b64(b"hi"),
    }


def test_json_round_trip_through_text_keeps_id_and_signature(signer: Wallet) -> None:
    item = ans104.sign(
        signer, data=b"\x00data", tags=[("k", "✓")], target=b"t" * 32, anchor=b"a" * 32
    )
    back = jsonform.from_json(json.loads(json.dumps(jsonform.to_json(item))))
    assert back == item and back.raw == item.raw
    assert back.id == item.id and back.verify()


def test_from_json_accepts_matching_id_and_padded_base64(ed_signer: Wallet) -> None:
    item = ans104.sign(ed_signer, data=b"d")
    doc = jsonform.to_json(item)
    doc["id"] = item.id
    doc["data"] = base64.urlsafe_b64encode(b"d").decode()  # "ZA=="
    assert jsonform.from_json(doc) == item


def test_from_json_does_not_verify_but_verification_catches_tampering(ed_signer: Wallet) -> None:
    doc = jsonform.to_json(ans104.sign(ed_signer, data=b"original"))
    doc["data"] = b64(b"forged")
    item = jsonform.from_json(doc)
    assert item.data == b"forged"
    assert not item.verify()


@settings(max_examples=60)
@given(
    tags=st.lists(st.tuples(st.text(max_size=15), st.text(max_size=15)), max_size=8),
    data=st.binary(max_size=200),
    target=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
    anchor=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
)
def test_json_round_trip_property(
    ed_signer: Wallet, tags: list[tuple[str, str]], data: bytes, target: bytes, anchor: bytes
) -> None:
    item = ans104.sign(ed_signer, data=data, tags=tags, target=target, anchor=anchor)
    back = jsonform.from_json(json.loads(json.dumps(jsonform.to_json(item))))
    assert back == item
    assert back.verify()


@settings(max_examples=40)
@given(
    tags=st.lists(st.tuples(st.text(max_size=15), st.text(max_size=15)), max_size=8),
    data=st.binary(max_size=80),
    target=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
    anchor=st.one_of(st.just(b""), st.binary(min_size=32, max_size=32)),
)
def test_a_messages_json_form_is_the_items(
    ed_signer: Wallet, tags: list[tuple[str, str]], data: bytes, target: bytes, anchor: bytes
) -> None:
    """``Message.to_json`` reuses its encoded target and anchor: same members, order, values."""
    item = ans104.sign(ed_signer, data=data, tags=tags, target=target, anchor=anchor)
    assert list(Message.from_item(item).to_json().items()) == list(jsonform.to_json(item).items())


Doc = dict[str, object]


def _set(key: str, value: object) -> Callable[[Doc], object]:
    def mutate(doc: Doc) -> object:
        doc[key] = value
        return doc

    return mutate


def _drop(key: str) -> Callable[[Doc], object]:
    def mutate(doc: Doc) -> object:
        del doc[key]
        return doc

    return mutate


def _tags(value: object) -> Callable[[Doc], object]:
    return _set("tags", value)


KEYS = ("signature_type", "signature", "owner", "target", "anchor", "tags", "data")

SHAPE_ERRORS: list[tuple[str, Callable[[Doc], object], str]] = [
    ("list", lambda d: [d], "must be an object, not list"),
    ("null", lambda d: None, "must be an object, not null"),
    ("string", lambda d: "{}", "must be an object, not str"),
    *[(f"missing {k}", _drop(k), f"missing '{k}'") for k in KEYS],
    ("unknown member", _set("Tags", []), "unknown member"),
    ("type as string", _set("signature_type", "2"), "must be an integer, not str"),
    ("type as bool", _set("signature_type", True), "must be an integer, not bool"),
    ("type as float", _set("signature_type", 2.0), "must be an integer, not float"),
    ("signature null", _set("signature", None), "'signature' must be a base64url string"),
    ("signature bad b64", _set("signature", "a+b/"), "'signature' is not base64url"),
    ("signature short", _set("signature", b64(b"s" * 63)), "signature must be 64"),
    ("owner long", _set("owner", b64(b"o" * 33)), "owner must be 32"),
    ("target 31 bytes", _set("target", b64(b"t" * 31)), "target must be empty or 32"),
    ("anchor bad b64", _set("anchor", "Zh"), "'anchor' is not base64url"),
    ("data number", _set("data", 5), "'data' must be a base64url string, not int"),
    ("tags object", _tags({"a": "b"}), "'tags' must be a list"),
    ("tag as pair", _tags([["a", "b"]]), r"tags\[0\] must be an object"),
    ("tag missing value", _tags([{"name": "a"}]), r"tags\[0\] must be an object"),
    ("tag extra key", _tags([{"name": "a", "value": "b", "x": 1}]), "exactly 'name'"),
    ("tag name number", _tags([{"name": 1, "value": "b"}]), "must be strings"),
    ("tag value null", _tags([{"name": "a", "value": None}]), "must be strings"),
    ("tag surrogate", _tags([{"name": "a", "value": "\ud800"}]), "UTF-8"),
    ("tag too long", _tags([{"name": "a", "value": "v" * 3073}]), "at most 3072"),
    ("129 tags", _tags([{"name": "a", "value": "b"}] * 129), "at most 128"),
    ("id mismatch", _set("id", "x" * 43), "'id' is"),
]


@pytest.mark.parametrize(
    ("mutate", "match"), [c[1:] for c in SHAPE_ERRORS], ids=[c[0] for c in SHAPE_ERRORS]
)
def test_from_json_shape_errors(
    ed_signer: Wallet, mutate: Callable[[Doc], object], match: str
) -> None:
    doc = jsonform.to_json(ans104.sign(ed_signer, data=b"d", tags=[("a", "b")]))
    with pytest.raises(InvalidMessage, match=match):
        jsonform.from_json(mutate(doc))


def test_from_json_unknown_signature_type(ed_signer: Wallet) -> None:
    doc = jsonform.to_json(ans104.sign(ed_signer))
    doc["signature_type"] = 3
    with pytest.raises(UnsupportedSignature, match="signature type 3"):
        jsonform.from_json(doc)


def test_each_declared_field_is_a_required_member(rsa_signer: Wallet) -> None:
    item = ans104.sign(rsa_signer, data=b"x", tags=[("A", "1")])
    form = jsonform.to_json(item)
    assert isinstance(item, ItemFields) and list(form) == [f.name for f in ITEM_FIELDS]
    for f in ITEM_FIELDS:
        assert getattr(item, f.name) is not None
        partial = {k: v for k, v in form.items() if k != f.name}
        with pytest.raises(InvalidMessage, match=f"missing '{f.name}'"):
            jsonform.from_json(partial)
