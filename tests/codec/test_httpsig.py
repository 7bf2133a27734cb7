"""RFC 9421 / HyperBEAM httpsig@1.0 messages: parsing, verification, ids, storage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

import pytest
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList

from aonode.codec import httpsig, jsonform
from aonode.codec import httpsig_base as sig
from aonode.codec.b64 import b64url_encode
from aonode.codec.httpsig_sign import content_digest, sign
from aonode.codec.item import ITEM_FIELDS, ItemFields
from aonode.errors import InputError, InvalidMessage, InvalidSignature, UnsupportedSignature
from aonode.message import Message
from aonode.store.base import MessageRecord
from aonode.wallet import Wallet

PATH = "/PID~process@1.0/schedule"
TARGET = b64url_encode(bytes(range(32)))


def _signed(signer: Wallet, **options: object) -> dict[str, str]:
    keys = {"Type": "Message", "Action": "Eval", "target": TARGET, "num": "5"}
    return sign(signer, keys, body=b"return 1+1", path=PATH, **options)  # type: ignore[arg-type]


def _parse(
    headers: dict[str, str], body: bytes = b"return 1+1", **kw: object
) -> httpsig.HttpSigItem:
    return httpsig.parse("POST", PATH, "", headers, body, **kw)  # type: ignore[arg-type]


def _signature_bytes(header: str) -> bytes:
    d = Dictionary()
    d.parse(header.encode())
    (member,) = d.values()
    assert isinstance(member.value, bytes)
    return member.value


def test_round_trip_as_an_ao_message(signer: Wallet) -> None:
    headers = _signed(signer)
    item = _parse(headers)
    assert item.owner_address == signer.address and item.owner == signer.owner
    assert item.id_bytes == hashlib.sha256(_signature_bytes(headers["signature"])).digest()
    assert item.data == b"return 1+1"
    assert item.target == bytes(range(32))
    # Tags: every covered key but plumbing, target and data, Header-Cased, in covered order.
    assert item.tags == (("Action", "Eval"), ("Num", "5"), ("Type", "Message"))
    msg = Message.from_item(item)
    assert msg.keys == {"action": "Eval", "num": "5", "type": "Message", "target": TARGET}
    assert msg.process_id() == TARGET and msg.signer == signer.address
    assert item.verify()


def test_signature_base_is_rfc9421_with_hyperbeam_path(rsa_signer: Wallet) -> None:
    headers = sign(rsa_signer, {"action": "Eval"}, path="/x")
    (entry,) = sig.parse_signatures(headers["signature"], headers["signature-input"])
    base = sig.signature_base(entry, headers, {}, hyperbeam=True)
    params = headers["signature-input"].split("=", 1)[1]
    assert base == f'"path": /x\n"action": Eval\n"@signature-params": {params}'.encode()
    assert params == (
        f'("@path" "action");alg="rsa-pss-sha512";keyid="{b64url_encode(rsa_signer.owner)}"'
    )


def test_stored_form_keeps_only_covered_parts_and_reverifies(signer: Wallet) -> None:
    headers = _signed(signer) | {"x-uncovered": "dropped", "user-agent": "curl"}
    item = _parse(headers)
    msg = Message.from_item(item)
    record = msg.record()
    assert record.codec == httpsig.CODEC and record.id == item.id
    assert b"x-uncovered" not in record.raw and b"curl" not in record.raw
    again = Message.from_record(record)
    assert again.item == item and again.id == item.id and again.keys == msg.keys
    assert again.item.verify()
    back = Message.from_json(msg.to_json())
    assert back.item == item and back.item.verify()
    tampered = record.raw.replace(b'"action":"Eval"', b'"action":"Evil"')
    assert tampered != record.raw
    bad = Message.from_record(MessageRecord(record.id, tampered, record.codec))
    assert not bad.item.verify()


def test_uncovered_body_is_not_committed(signer: Wallet) -> None:
    headers = sign(signer, {"action": "Eval", "data": "from a header"}, path=PATH)
    item = _parse(headers, b"an uncovered body")
    assert item.data == b"from a header" and item.body == b""
    assert b"uncovered" not in item.raw


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"action": "Evil"}, InvalidSignature, "invalid-signature"),
        ({"target": b64url_encode(bytes(32))}, InvalidSignature, "invalid-signature"),
        ({"path": "/other"}, InvalidSignature, "invalid-signature"),
        ({"content-digest": content_digest(b"other")}, InvalidSignature, "content-digest-mismatch"),
        ({"action": None}, InvalidMessage, "missing-component"),
        ({"signature-input": "garbage(("}, InvalidMessage, "invalid-signature-input"),
        ({"signature-input": 'a=("x");alg="rsa-pss-sha512"'}, InvalidMessage, None),
        ({"signature": "sig=:AAAA:"}, InvalidMessage, "invalid-signature-input"),
        ({"signature": None}, InvalidSignature, "missing-signature"),
        ({"content-digest": "sha-256=:not base64:"}, InvalidMessage, "invalid-content-digest"),
        ({"content-digest": "md5=:AAAA:"}, InvalidMessage, "invalid-content-digest"),
    ],
)
def test_tampered_or_malformed_requests_are_refused(
    signer: Wallet, change: dict[str, str | None], error: type[InputError], code: str | None
) -> None:
    headers = _signed(signer)
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    with pytest.raises(error) as caught:
        _parse(headers)
    if code is not None:
        assert caught.value.code == code


def test_body_must_match_content_digest(signer: Wallet) -> None:
    with pytest.raises(InvalidSignature) as caught:
        _parse(_signed(signer), b"return 2+2")
    assert caught.value.code == "content-digest-mismatch"


def test_sha512_digest_is_checked_too(signer: Wallet) -> None:
    good = base64.b64encode(hashlib.sha512(b"d").digest()).decode()
    headers = sign(signer, {"content-digest": f"sha-512=:{good}:"}, path=PATH)
    assert _parse(headers, b"d").data == b"d"
    with pytest.raises(InvalidSignature):
        _parse(headers, b"e")


def test_time_window(signer: Wallet) -> None:
    now = int(time.time())
    expired = _signed(signer, created=now - 600, expires=now - 300)
    with pytest.raises(InvalidSignature) as caught:
        _parse(expired)
    assert caught.value.code == "signature-expired"
    future = _signed(signer, created=now + 3600)
    with pytest.raises(InvalidSignature) as caught:
        _parse(future)
    assert caught.value.code == "signature-not-yet-valid"
    fresh = _signed(signer, created=now, expires=now + 300)
    assert _parse(fresh).verify()
    # Stored messages re-verify after they expire: the window is checked on arrival only.
    assert _parse(expired, now=now - 400).verify()


def test_unknown_algorithm_is_unsupported(signer: Wallet) -> None:
    headers = _signed(signer)
    headers["signature-input"] = headers["signature-input"].replace(
        sig.RSA_PSS_SHA512 if "rsa" in headers["signature-input"] else sig.ED25519,
        "rsa-v1_5-sha256",
    )
    with pytest.raises(UnsupportedSignature):
        _parse(headers)


def _add_hmac(headers: dict[str, str], *, corrupt: bool = False) -> bytes:
    """Add HyperBEAM's hmac-sha256 commitment over the same components."""
    (entry,) = sig.parse_signatures(headers["signature"], headers["signature-input"])
    inner = InnerList(list(entry.components))
    inner.params["alg"] = sig.HMAC_SHA256
    inner.params["keyid"] = "ao"
    hentry = sig.SigEntry("hmac", entry.components, inner, sig.HMAC_SHA256, "ao", b"", None, None)
    base = sig.signature_base(hentry, headers, {}, hyperbeam=True)
    assert base is not None
    mac = hmac.digest(b"ao", base + (b"x" if corrupt else b""), "sha256")
    headers["signature"] += f", hmac=:{base64.b64encode(mac).decode()}:"
    headers["signature-input"] += f", hmac={inner}"
    return mac


def test_hmac_commitment_and_combined_id(signer: Wallet) -> None:
    headers = _signed(signer)
    rsa_id = hashlib.sha256(_signature_bytes(_signed_only(headers))).digest()
    mac = _add_hmac(headers)
    item = _parse(headers)
    expected = (int.from_bytes(rsa_id, "big") + int.from_bytes(mac, "big")) % (1 << 256)
    assert item.id_bytes == expected.to_bytes(32, "big")
    assert item.owner_address == signer.address


def _signed_only(headers: dict[str, str]) -> str:
    return headers["signature"].split(",")[0]


def test_wrong_hmac_is_refused(signer: Wallet) -> None:
    headers = _signed(signer)
    _add_hmac(headers, corrupt=True)
    with pytest.raises(InvalidSignature):
        _parse(headers)


def test_hmac_alone_signs_nothing(signer: Wallet) -> None:
    headers = _signed(signer)
    _add_hmac(headers)
    sigs, inputs = Dictionary(), Dictionary()
    sigs.parse(headers["signature"].encode())
    inputs.parse(headers["signature-input"].encode())
    headers["signature"], headers["signature-input"] = (
        f"hmac={sigs['hmac']}",
        (f"hmac={inputs['hmac']}"),
    )
    with pytest.raises(InvalidSignature) as caught:
        _parse(headers)
    assert caught.value.code == "unsigned-message"


def test_plain_rfc9421_derived_components(ed_signer: Wallet) -> None:
    """A generic RFC 9421 signer: @method and @path from the request line, '@' kept."""
    inner = InnerList(["@method", "@path", "action"])
    inner.params["alg"] = sig.ED25519
    inner.params["keyid"] = base64.b64encode(ed_signer.owner).decode()  # plain base64 works
    base = f'"@method": POST\n"@path": {PATH}\n"action": Eval\n"@signature-params": {inner}'
    signature = base64.b64encode(ed_signer.sign(base.encode())).decode()
    headers = {"action": "Eval", "signature": f"s=:{signature}:", "signature-input": f"s={inner}"}
    item = _parse(headers, b"")
    assert item.owner_address == ed_signer.address
    assert dict(item.derived) == {"method": "POST", "path": PATH}
    assert Message.from_record(Message.from_item(item).record()).item.verify()
    with pytest.raises(InvalidSignature):
        httpsig.parse("PUT", PATH, "", headers, b"")


def test_multipart_bodies_are_refused(signer: Wallet) -> None:
    headers = sign(signer, {"body-keys": '"a"'}, body=b"--x--", path=PATH)
    with pytest.raises(InvalidMessage) as caught:
        _parse(headers, b"--x--")
    assert caught.value.code == "unsupported-httpsig-body"


def test_bad_target_is_refused(signer: Wallet) -> None:
    headers = sign(signer, {"target": "not-an-id"}, path=PATH)
    with pytest.raises(InvalidMessage):
        _parse(headers, b"")


def test_detection() -> None:
    assert httpsig.is_httpsig({"signature-input": "x"})
    assert httpsig.is_httpsig({"codec-device": "httpsig@1.0"})
    assert not httpsig.is_httpsig({"codec-device": "ans104@1.0", "signature-input": "x"})
    assert not httpsig.is_httpsig({"content-type": "application/json"})


def test_distinct_messages_have_distinct_ids(signer: Wallet) -> None:
    a = _parse(sign(signer, {"n": os.urandom(8).hex()}, path=PATH), b"")
    b = _parse(sign(signer, {"n": os.urandom(8).hex()}, path=PATH), b"")
    assert a.id != b.id and len(a.id) == 43


def test_reads_as_the_declared_item_fields_in_the_json_form(signer: Wallet) -> None:
    """One declaration of the data-item fields (codec/item.py) serves every codec."""
    item = _parse(_signed(signer))
    assert isinstance(item, ItemFields)
    form = jsonform.to_json(item)
    assert list(form) == [f.name for f in ITEM_FIELDS]
    assert form["owner"] == b64url_encode(signer.owner) and form["target"] == TARGET
    assert form["tags"] == [{"name": n, "value": v} for n, v in item.tags]
