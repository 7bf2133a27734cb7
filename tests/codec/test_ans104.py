"""ANS-104 data items: wire layout, deep hash, strict parsing, signing.

Expected values come from the ANS-104 text and the Avro spec (layouts and
encodings are written out by hand here), never from the code under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aonode import wallet as wallet_mod
from aonode.codec import ans104, avro_tags
from aonode.codec.b64 import b64url_encode
from aonode.errors import InvalidMessage, InvalidSignature, UnsupportedSignature
from aonode.wallet import Wallet

# -- fixtures and spec-derived helpers ----------------------------------------


def ref_deep_hash(chunk: bytes | list[object]) -> bytes:
    """Arweave deep hash exactly as the ANS-104 / arweave-js description gives it."""

    def sha384(b: bytes) -> bytes:
        return hashlib.sha384(b).digest()

    if isinstance(chunk, bytes):
        tag = b"blob" + str(len(chunk)).encode()
        return sha384(sha384(tag) + sha384(chunk))
    acc = sha384(b"list" + str(len(chunk)).encode())
    for item in chunk:
        assert isinstance(item, bytes | list)
        acc = sha384(acc + ref_deep_hash(item))
    return acc


def le(n: int, width: int) -> bytes:
    return n.to_bytes(width, "little")


def wire(
    *,
    sig_type: bytes = b"\x02\x00",
    signature: bytes = b"\x11" * 64,
    owner: bytes = b"\x22" * 32,
    target: bytes = b"\x01" + b"\x33" * 32,
    anchor: bytes = b"\x01" + b"\x44" * 32,
    count: int = 1,
    size: int | None = None,
    tags: bytes = b"\x02\x02a\x02b\x00",  # Avro: 1 item, "a", "b", terminator
    data: bytes = b"payload",
) -> bytes:
    """A data item assembled field by field from the ANS-104 table."""
    return b"".join(
        [
            sig_type,
            signature,
            owner,
            target,
            anchor,
            le(count, 8),
            le(len(tags) if size is None else size, 8),
            tags,
            data,
        ]
    )


def hand_item(w: Wallet, tags: bytes, count: int) -> bytes:
    """An item laid out by hand with any tag layout, then signed over its own deep hash."""
    sig_len = 512 if w.signature_type == 1 else 64
    unsigned = wire(
        sig_type=le(w.signature_type, 2),
        signature=b"\x00" * sig_len,
        owner=w.owner,
        tags=tags,
        count=count,
    )
    signature = w.sign(ans104.parse(unsigned).signature_data())
    return unsigned[:2] + signature + unsigned[2 + sig_len :]


# -- encodings from the specs -----------------------------------------------------


def test_tags_use_avro_zigzag_varints() -> None:
    # Avro spec: long 1 -> 02, 64 -> 80 01; strings are length-prefixed bytes.
    assert ans104.encode_tags([("a", "b")]) == b"\x02\x02a\x02b\x00"
    assert ans104.encode_tags([("n" * 64, "")]) == b"\x02\x80\x01" + b"n" * 64 + b"\x00\x00"
    many = ans104.encode_tags([("", "")] * 64)
    assert many == b"\x80\x01" + b"\x00\x00" * 64 + b"\x00"
    assert ans104.encode_tags([]) == b""


def test_wire_layout_follows_the_ans104_table(signer: Wallet) -> None:
    target, anchor = bytes(range(32)), bytes(range(32, 64))
    tags = [("Content-Type", "text/plain"), ("Ünïcode", "✓")]
    item = ans104.sign(signer, data=b"hello", tags=tags, target=target, anchor=anchor)
    sig_len, owner_len = (512, 512) if signer.signature_type == 1 else (64, 32)
    tag_bytes = (
        b"\x04"
        + b"\x18Content-Type\x14text/plain"
        + bytes([len("Ünïcode".encode()) * 2])
        + "Ünïcode".encode()
        + b"\x06"
        + "✓".encode()
        + b"\x00"
    )
    expected = (
        le(signer.signature_type, 2)
        + item.signature
        + signer.owner
        + b"\x01"
        + target
        + b"\x01"
        + anchor
        + le(2, 8)
        + le(len(tag_bytes), 8)
        + tag_bytes
        + b"hello"
    )
    assert item.raw == expected
    assert len(item.signature) == sig_len and len(item.owner) == owner_len


def test_absent_target_and_anchor_are_single_zero_bytes(ed_signer: Wallet) -> None:
    item = ans104.sign(ed_signer)
    assert item.raw == le(2, 2) + item.signature + ed_signer.owner + b"\x00\x00" + bytes(16)


def test_id_is_sha256_of_signature(signer: Wallet) -> None:
    item = ans104.sign(signer, data=b"x")
    digest = hashlib.sha256(item.signature).digest()
    assert item.id_bytes == digest
    assert item.id == b64url_encode(digest)
    assert len(item.id) == 43
    assert item.owner_address == wallet_mod.address_of(signer.owner) == signer.address


def test_signature_data_is_the_deep_hash_of_the_spec_list(signer: Wallet) -> None:
    tags = [(f"Tag-{i}", "v" * i) for i in range(13)]
    target, anchor = b"\x07" * 32, b""
    item = ans104.sign(signer, data=b"data", tags=tags, target=target, anchor=anchor)
    expected = ref_deep_hash(
        [
            b"dataitem",
            b"1",
            str(signer.signature_type).encode(),
            signer.owner,
            target,
            anchor,
            ans104.encode_tags(tags),
            b"data",
        ]
    )
    assert item.signature_data() == expected
    assert ans104.deep_hash([b"a", [b"b", b""]]) == ref_deep_hash([b"a", [b"b", b""]])
    assert wallet_mod.verify(signer.signature_type, signer.owner, expected, item.signature)


# -- round trips ------------------------------------------------------------------


def test_sign_then_parse_round_trips(signer: Wallet) -> None:
    tags = (("Action", "Eval"), ("Empty", ""), ("", "no name"), ("Emoji", "🙂 你好"))
    item = ans104.sign(signer, data=b"\x00\xff" * 100, tags=tags, target=b"t" * 32)
    parsed = ans104.parse_verified(item.raw)
    assert parsed == item
    assert (parsed.signature_type, parsed.signature, parsed.owner) == (
        signer.signature_type,
        item.signature,
        signer.owner,
    )
    assert (parsed.target, parsed.anchor, parsed.tags, parsed.data) == (
        b"t" * 32,
        b"",
        tags,
        b"\x00\xff" * 100,
    )


def test_build_reproduces_the_signed_wire_form(signer: Wallet) -> None:
    item = ans104.sign(signer, data=b"d", tags=[("a", "b")], anchor=b"a" * 32)
    rebuilt = ans104.build(
        item.signature_type,
        item.signature,
        item.owner,
        item.target,
        item.anchor,
        item.tags,
        item.data,
    )
    assert rebuilt == item.raw


def test_tags_at_the_limits_round_trip(ed_signer: Wallet) -> None:
    tags = [("n" * 1024, "v" * 3072)] + [(str(i), "✓" * 1024) for i in range(127)]
    item = ans104.sign(ed_signer, tags=tags)
    assert ans104.parse_verified(item.raw).tags == tuple(tags)


def test_empty_item_round_trips(signer: Wallet) -> None:
    item = ans104.sign(signer)
    assert ans104.parse_verified(item.raw) == item
    assert item.tags == () and item.data == b"" and item.target == b"" == item.anchor


_tag_text = st.text(max_size=20)
_optional32 = st.one_of(st.just(b""), st.binary(min_size=32, max_size=32))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    tags=st.lists(st.tuples(_tag_text, _tag_text), max_size=12),
    data=st.binary(max_size=300),
    target=_optional32,
    anchor=_optional32,
)
def test_round_trip_property_ed25519(
    ed_signer: Wallet,
    tags: list[tuple[str, str]],
    data: bytes,
    target: bytes,
    anchor: bytes,
) -> None:
    item = ans104.sign(ed_signer, data=data, tags=tags, target=target, anchor=anchor)
    parsed = ans104.parse_verified(item.raw)
    assert (parsed.tags, parsed.data, parsed.target, parsed.anchor) == (
        tuple(tags),
        data,
        target,
        anchor,
    )
    assert parsed.id == item.id


@settings(max_examples=15, deadline=None)
@given(
    tags=st.lists(st.tuples(_tag_text, _tag_text), max_size=5),
    data=st.binary(max_size=100),
    target=_optional32,
    anchor=_optional32,
)
def test_round_trip_property_rsa(
    rsa_signer: Wallet, tags: list[tuple[str, str]], data: bytes, target: bytes, anchor: bytes
) -> None:
    item = ans104.sign(rsa_signer, data=data, tags=tags, target=target, anchor=anchor)
    parsed = ans104.parse_verified(item.raw)
    assert (parsed.tags, parsed.data, parsed.target, parsed.anchor) == (
        tuple(tags),
        data,
        target,
        anchor,
    )


# -- tampering --------------------------------------------------------------------


def _flip(raw: bytes, offset: int, mask: int = 0x01) -> bytes:
    return raw[:offset] + bytes([raw[offset] ^ mask]) + raw[offset + 1 :]


def _tamperings(item: ans104.DataItem) -> dict[str, bytes]:
    raw = item.raw
    sig_end = 2 + len(item.signature)
    owner_end = sig_end + len(item.owner)
    value_at = raw.index(b"ao-value")
    return {
        "signature": _flip(raw, 2 + 10),
        "owner": _flip(raw, sig_end + 5),
        "target": _flip(raw, owner_end + 1),
        "anchor": _flip(raw, owner_end + 34),
        "tag value": _flip(raw, value_at, 0x20),  # 'a' -> 'A': still valid UTF-8
        "tag name": _flip(raw, raw.index(b"Name"), 0x20),
        "data": _flip(raw, len(raw) - 1),
        "target removed": raw[:owner_end] + b"\x00" + raw[owner_end + 33 :],
        "data appended": raw + b"!",
    }


@pytest.mark.parametrize(
    "field",
    [
        "signature",
        "owner",
        "target",
        "anchor",
        "tag value",
        "tag name",
        "data",
        "target removed",
        "data appended",
    ],
)
def test_tampering_any_field_breaks_verification(signer: Wallet, field: str) -> None:
    item = ans104.sign(
        signer,
        data=b"some data",
        tags=[("Name", "ao-value")],
        target=b"\x05" * 32,
        anchor=b"\x06" * 32,
    )
    assert item.verify()
    tampered = _tamperings(item)[field]
    parsed = ans104.parse(tampered)  # still well-formed...
    assert not parsed.verify()  # ...but no longer what the owner signed
    with pytest.raises(InvalidSignature):
        ans104.parse_verified(tampered)


def test_signature_from_another_wallet_does_not_verify(
    rsa_signer: Wallet, ed_signer: Wallet
) -> None:
    mine = ans104.sign(ed_signer, data=b"x")
    other = wallet_mod.generate("ed25519")
    forged = ans104.build(2, other.sign(mine.signature_data()), ed_signer.owner, b"", b"", (), b"x")
    assert not ans104.parse(forged).verify()


# -- every Avro layout is accepted, and the signature covers the raw bytes -------


@pytest.mark.parametrize(
    ("region", "count", "expected"),
    [
        (b"\x02\x02a\x02b\x00", 1, (("a", "b"),)),
        # negative block count -1, then block size 4, then the item
        (b"\x01\x08\x02a\x02b\x00", 1, (("a", "b"),)),
        # two blocks of one item each
        (b"\x02\x02a\x02b\x02\x02c\x02d\x00", 2, (("a", "b"), ("c", "d"))),
        # an empty Avro array where no tags were declared
        (b"\x00", 0, ()),
        # over-long but valid varint for the name length 1 (0x82 0x00 = 2 -> 1)
        (b"\x02\x82\x00a\x02b\x00", 1, (("a", "b"),)),
    ],
    ids=["canonical", "negative-count", "two-blocks", "empty-array", "overlong-varint"],
)
def test_parse_accepts_any_valid_avro_layout(
    ed_signer: Wallet, region: bytes, count: int, expected: tuple[tuple[str, str], ...]
) -> None:
    raw = hand_item(ed_signer, region, count)
    item = ans104.parse_verified(raw)
    assert item.tags == expected
    assert item.data == b"payload"


def test_signature_over_one_layout_does_not_cover_another(ed_signer: Wallet) -> None:
    canonical = hand_item(ed_signer, b"\x02\x02a\x02b\x00", 1)
    item = ans104.parse(canonical)
    other_layout = wire(
        sig_type=le(2, 2),
        signature=item.signature,
        owner=ed_signer.owner,
        tags=b"\x01\x08\x02a\x02b\x00",
    )
    reparsed = ans104.parse(other_layout)
    assert reparsed.tags == item.tags
    assert not reparsed.verify()


# -- strict parser: every rejection path -------------------------------------------


def _tags(count: int, region: bytes) -> bytes:
    return wire(count=count, tags=region)


def _header_only(rest: bytes) -> bytes:
    return b"\x02\x00" + b"\x11" * 64 + b"\x22" * 32 + rest


REJECTIONS: list[tuple[str, bytes, type[Exception], str]] = [
    ("empty", b"", InvalidMessage, "too short"),
    ("one byte", b"\x02", InvalidMessage, "too short"),
    ("type 3", wire(sig_type=b"\x03\x00"), UnsupportedSignature, "signature type 3"),
    ("type 0", wire(sig_type=b"\x00\x00"), UnsupportedSignature, "signature type 0"),
    ("big-endian 1", wire(sig_type=b"\x00\x01"), UnsupportedSignature, "signature type 256"),
    ("truncated signature", b"\x02\x00" + b"\x11" * 10, InvalidMessage, "signature needs 64"),
    ("truncated owner", b"\x02\x00" + b"\x11" * 64 + b"\x22", InvalidMessage, "owner needs 32"),
    ("no target byte", _header_only(b""), InvalidMessage, "target presence byte"),
    ("target byte 2", wire(target=b"\x02" + b"\x33" * 32), InvalidMessage, "must be 0 or 1"),
    ("target truncated", _header_only(b"\x01" + b"\x33" * 5), InvalidMessage, "target needs 32"),
    ("no anchor byte", _header_only(b"\x00"), InvalidMessage, "anchor presence byte"),
    ("anchor byte 255", wire(anchor=b"\xff"), InvalidMessage, "anchor presence byte"),
    ("anchor truncated", _header_only(b"\x00\x01abc"), InvalidMessage, "anchor needs 32"),
    ("no tag header", _header_only(b"\x00\x00" + bytes(10)), InvalidMessage, "tag count"),
    ("129 tags", wire(count=129), InvalidMessage, "at most 128"),
    ("tags past end", wire(size=100, data=b""), InvalidMessage, "runs past the end"),
    ("count without tags", _tags(1, b""), InvalidMessage, "tags field is empty"),
    ("fewer than declared", _tags(2, b"\x02\x02a\x02b\x00"), InvalidMessage, "holds 1"),
    ("more than declared", _tags(1, b"\x04\x02a\x02b\x02c\x02d\x00"), InvalidMessage, "more tags"),
    ("no terminator", _tags(1, b"\x02\x02a\x02b"), InvalidMessage, "truncated inside"),
    ("after terminator", _tags(1, b"\x02\x02a\x02b\x00\x00"), InvalidMessage, "after the Avro"),
    ("negative name length", _tags(1, b"\x02\x01a\x02b\x00"), InvalidMessage, "negative length"),
    ("name past end", _tags(1, b"\x02\x0aa"), InvalidMessage, "runs past the end of the tags"),
    ("varint off the end", _tags(1, b"\x02\xff"), InvalidMessage, "truncated inside"),
    ("varint over 64 bits", _tags(1, b"\x02" + b"\xff" * 11), InvalidMessage, "64-bit Avro long"),
    ("block size wrong", _tags(1, b"\x01\x02\x02a\x02b\x00"), InvalidMessage, "declares 1 bytes"),
    ("block size negative", _tags(1, b"\x01\x01\x02a\x02b\x00"), InvalidMessage, "negative"),
    ("name not UTF-8", _tags(1, b"\x02\x02\xff\x02b\x00"), InvalidMessage, "name is not valid"),
    ("value not UTF-8", _tags(1, b"\x02\x02a\x02\xc3\x00"), InvalidMessage, "value is not valid"),
    ("surrogate", _tags(1, b"\x02\x02a\x06\xed\xa0\x80\x00"), InvalidMessage, "not valid UTF-8"),
    (
        "name over 1024",
        _tags(1, b"\x02\x82\x10" + b"n" * 1025 + b"\x00\x00"),
        InvalidMessage,
        "1025 bytes; at most 1024",
    ),
    (
        "value over 3072",
        _tags(1, b"\x02\x00\x82\x30" + b"v" * 3073 + b"\x00"),
        InvalidMessage,
        "3073 bytes; at most 3072",
    ),
]


@pytest.mark.parametrize(
    ("raw", "exc", "match"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_parse_rejects(raw: bytes, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        ans104.parse(raw)


def test_the_wire_helper_itself_parses() -> None:
    # The rejection table mutates this valid base item one field at a time.
    item = ans104.parse(wire())
    assert item.tags == (("a", "b"),)
    assert item.target == b"\x33" * 32 and item.anchor == b"\x44" * 32
    assert item.data == b"payload"


def test_rejections_keep_their_error_codes() -> None:
    with pytest.raises(InvalidMessage) as bad:
        ans104.parse(b"")
    with pytest.raises(UnsupportedSignature) as unsupported:
        ans104.parse(wire(sig_type=b"\x03\x00"))
    assert (bad.value.code, unsupported.value.code) == (
        "invalid-message",
        "unsupported-signature-type",
    )


# -- signing-side validation ------------------------------------------------------


SIGN_REJECTIONS: list[tuple[str, Callable[[Wallet], object], str]] = [
    ("129 tags", lambda w: ans104.sign(w, tags=[("a", "b")] * 129), "at most 128"),
    ("long name", lambda w: ans104.sign(w, tags=[("n" * 1025, "")]), "at most 1024"),
    ("long value", lambda w: ans104.sign(w, tags=[("n", "✓" * 1025)]), "at most 3072"),
    ("surrogate", lambda w: ans104.sign(w, tags=[("n", "\ud800")]), "UTF-8"),
    ("short target", lambda w: ans104.sign(w, target=b"x" * 31), "target must be"),
    ("long anchor", lambda w: ans104.sign(w, anchor=b"x" * 33), "anchor must be"),
]


@pytest.mark.parametrize(
    ("make", "match"), [c[1:] for c in SIGN_REJECTIONS], ids=[c[0] for c in SIGN_REJECTIONS]
)
def test_sign_refuses_what_parse_would_reject(
    ed_signer: Wallet, make: Callable[[Wallet], object], match: str
) -> None:
    with pytest.raises(InvalidMessage, match=match):
        make(ed_signer)


@pytest.mark.parametrize(
    ("args", "exc", "match"),
    [
        ((3, b"s" * 64, b"o" * 32), UnsupportedSignature, "signature type 3"),
        ((2, b"s" * 63, b"o" * 32), InvalidMessage, "signature must be 64"),
        ((2, b"s" * 64, b"o" * 512), InvalidMessage, "owner must be 32"),
        ((1, b"s" * 512, b"o" * 32), InvalidMessage, "owner must be 512"),
    ],
)
def test_build_checks_lengths(
    args: tuple[int, bytes, bytes], exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        ans104.build(*args, b"", b"", (), b"")


def test_repr_is_short_and_names_the_id(rsa_signer: Wallet) -> None:
    item = ans104.sign(rsa_signer, data=b"x" * 10_000)
    text = repr(item)
    assert item.id in text and len(text) < 300


# -- the fast reader of the canonical tag layout (issue 22) --------------------

_short = st.text(max_size=20).filter(lambda t: len(t.encode()) < 64)


@given(tags=st.lists(st.tuples(_short, _short), min_size=1, max_size=63))
def test_canonical_tags_take_the_fast_reader(tags: list[tuple[str, str]]) -> None:
    region = avro_tags.encode_tags(tags)
    assert avro_tags._decode_canonical(region, len(tags)) == tuple(tags)
    assert avro_tags.decode_tags(region, len(tags)) == tuple(tags)


@given(
    tags=st.lists(st.tuples(_short, _short), max_size=5),
    noise=st.binary(max_size=80),
    random_bytes=st.booleans(),
    delta=st.sampled_from([0, 0, 0, 1, -1, 40]),
    flip=st.tuples(st.integers(0, 100), st.integers(0, 255)),
)
def test_fast_tag_reader_never_accepts_what_the_strict_reader_refuses(
    tags: list[tuple[str, str]],
    noise: bytes,
    random_bytes: bool,
    delta: int,
    flip: tuple[int, int],
) -> None:
    region = noise if random_bytes else avro_tags.encode_tags(tags)
    count = max(len(tags) + delta, 0)
    if flip[0] < len(region):  # one byte changed anywhere: lengths, count, text, terminator
        region = region[: flip[0]] + bytes([flip[1]]) + region[flip[0] + 1 :]
    fast = avro_tags._decode_canonical(region, count)
    try:
        strict = avro_tags._decode_strict(region, count)
    except InvalidMessage:
        assert fast is None
    else:
        assert fast is None or fast == strict
