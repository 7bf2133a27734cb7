"""HTTP-signed messages (RFC 9421, HyperBEAM's ``httpsig@1.0``) as AO messages.

A client such as ``hbsig`` sends an AO message as an HTTP request: each key a
header (``action: Eval``, ``target: <pid>``), the data as the body, bound by
``content-digest``, and the whole signed with ``signature`` and
``signature-input`` (:mod:`aonode.codec.httpsig_base` checks those).

What the node keeps (:class:`HttpSigItem`) is only what a signature covers:
the covered header fields, the request values of covered derived components
(``@method``, ``@path``, ...), the two signature headers, and the body only
when ``content-digest`` is covered.  That is also the stored form (``raw``,
canonical JSON, codec ``"httpsig"``), so a stored message re-verifies
byte-for-byte, and nothing uncovered ever reaches an assignment.

As an AO message: the owner is the first public-key signer (address
``b64url(sha256(key))``, the Arweave rule); ``target`` and ``anchor`` are the
covered keys of those names; ``data`` is the committed body (else a covered
``data`` key); every other covered key is a tag, its name Header-Cased as aos
expects (``action`` → ``Action``).  HTTP plumbing (``path``,
``content-digest``, ``content-length``, ``inline-body-key``, ``ao-types``, the
signature headers) is covered but is not message content.

The id is HyperBEAM's: a commitment's id is ``sha256(signature)`` (an HMAC's is
the HMAC itself); one commitment gives the message id, several are added
together modulo 2^256 (HyperBEAM's ``hb_crypto:accumulate``).  An ``hbsig``
request carries one RSA signature, so its id is ``sha256(signature)``, as for
ANS-104.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from aonode.codec import httpsig_base as sig
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.codec.item import ItemFields
from aonode.errors import InputError, InvalidMessage, InvalidSignature
from aonode.wallet import ED25519_SIGNATURE_TYPE, RSA_SIGNATURE_TYPE, address_of

__all__ = ["CODEC", "DEVICE", "HttpSigItem", "from_json", "from_raw", "is_httpsig", "parse"]

CODEC = "httpsig"
"""``MessageRecord.codec`` of a stored httpsig message."""
DEVICE = "httpsig@1.0"

CLOCK_SKEW = 300
"""Seconds a ``created`` time may lie in the future (clocks differ)."""

_PLUMBING = frozenset(
    {
        "path",
        "method",
        "content-digest",
        "content-length",
        "inline-body-key",
        "ao-body-key",
        "ao-types",
        "signature",
        "signature-input",
    }
)
_FIELD_RE = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def is_httpsig(headers: Mapping[str, str]) -> bool:
    """Whether a request carries an RFC 9421 signature (and names no other codec)."""
    codec = headers.get("codec-device", "").lower()
    if codec:
        return codec.startswith("httpsig")
    return "signature-input" in headers


@dataclass(frozen=True, slots=True, repr=False)
class HttpSigItem(ItemFields):
    """A verified (or stored) HTTP-signed message; reads like an ANS-104 ``DataItem``.

    ``raw`` (the kept, covered form) is the only field equality looks at.
    """

    fields: tuple[tuple[str, str], ...] = field(compare=False)
    derived: tuple[tuple[str, str], ...] = field(compare=False)
    body: bytes = field(compare=False)
    entries: tuple[sig.SigEntry, ...] = field(compare=False)
    public_keys: tuple[bytes, ...] = field(compare=False)  # one per asymmetric entry
    raw: bytes
    id_bytes: bytes = field(compare=False)

    @property
    def id(self) -> str:
        return b64url_encode(self.id_bytes)

    @property
    def owner_address(self) -> str:
        return address_of(self.owner)

    def verify(self) -> bool:
        """Re-check every signature and the content digest (not the time window)."""
        try:
            _check(self.entries, dict(self.fields), dict(self.derived), self.body)
        except InputError:  # a tampered stored form may not even parse
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        """The JSON form: ``{"codec", "id", "fields", "derived", "body"}`` (body base64url)."""
        return {"codec": DEVICE, "id": self.id, **orjson.loads(self.raw)}

    def __repr__(self) -> str:
        return f"HttpSigItem(id={self.id!r}, owner_address={self.owner_address!r})"


def parse(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
) -> HttpSigItem:
    """Verify a signed request and keep its covered form.

    ``headers`` are lowercase names (one value each); ``query`` the raw query
    string.  Raises ``InvalidMessage``/``InvalidSignature`` (both 400) for a
    malformed, unsigned, tampered, expired or incompletely covered request.
    """
    request = {"method": method.upper(), "path": path, "query": "?" + query}
    if headers.get("host"):
        request["authority"] = headers["host"].lower()
    return _build(headers, request, body, now=time.time() if now is None else now, check=True)


def from_raw(raw: bytes) -> HttpSigItem:
    """Rebuild a stored message (verified when it was accepted; not re-verified here)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"stored httpsig message is not JSON: {exc}") from None
    return from_json(doc, check=False)


def from_json(obj: object, *, check: bool = False) -> HttpSigItem:
    """Parse the JSON form; ``check`` also verifies (else call ``item.verify()``)."""
    if not isinstance(obj, Mapping):
        raise InvalidMessage("an httpsig message must be a JSON object")
    fields, derived = _str_map(obj, "fields"), _str_map(obj, "derived")
    body_text = obj.get("body", "")
    if not isinstance(body_text, str):
        raise InvalidMessage("'body' must be a base64url string")
    try:
        body = b64url_decode(body_text)
    except ValueError as exc:
        raise InvalidMessage(f"'body' is not base64url: {exc}") from None
    item = _build(fields, derived, body, now=None, check=check)
    if "id" in obj and obj["id"] != item.id:
        raise InvalidMessage(f"'id' is {obj['id']!r} but the message's id is {item.id!r}")
    return item


def _str_map(obj: Mapping[Any, Any], key: str) -> dict[str, str]:
    value = obj.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidMessage(f"{key!r} must be an object of strings")
    return dict(value)


def _check(
    entries: tuple[sig.SigEntry, ...],
    fields: Mapping[str, str],
    derived: Mapping[str, str],
    body: bytes,
) -> None:
    keys = {e.name: sig.decode_key(e) for e in entries if e.asymmetric}
    if any("content-digest" in e.components for e in entries):
        sig.check_digest(fields["content-digest"], body)
    sig.verify_all(list(entries), fields, derived, keys)


def _build(
    headers: Mapping[str, str],
    request: Mapping[str, str],
    body: bytes,
    *,
    now: float | None,
    check: bool,
) -> HttpSigItem:
    signature, signature_input = headers.get("signature"), headers.get("signature-input")
    if not signature or not signature_input:
        raise InvalidSignature(
            "an httpsig message needs both signature and signature-input headers",
            code="missing-signature",
        )
    entries = tuple(sig.parse_signatures(signature, signature_input))
    signers = [e for e in entries if e.asymmetric]
    if not signers:
        raise InvalidSignature(
            "no public-key signature (an hmac-sha256 commitment alone signs nothing)",
            code="unsigned-message",
        )
    if now is not None:
        _check_times(entries, now)
    covered = list(dict.fromkeys(c for e in entries for c in e.components))
    fields: dict[str, str] = {"signature": signature, "signature-input": signature_input}
    derived: dict[str, str] = {}
    for name in covered:
        in_fields, in_request = _locate(name, headers, request)
        if not in_fields and not in_request:
            raise InvalidMessage(
                f"covered component {name!r} is not in the request", code="missing-component"
            )
        key = name.removeprefix("@")
        if in_fields:
            fields[key] = headers[key]
        if in_request:
            derived[key] = request[key]
    if "body-keys" in fields or fields.get("content-type", "").startswith("multipart/"):
        raise InvalidMessage(
            "multipart httpsig bodies (nested messages) are not supported; "
            "send the data as the plain body",
            code="unsupported-httpsig-body",
        )
    committed_body = body if "content-digest" in covered else b""
    if check:
        _check(entries, fields, derived, committed_body)
    return _item(entries, fields, derived, committed_body, covered)


def _locate(name: str, headers: Mapping[str, str], request: Mapping[str, str]) -> tuple[bool, bool]:
    """Whether component ``name`` is in the headers, and in the request's derived values."""
    if not name.startswith("@"):
        return name in headers, False
    key = name[1:]
    return key in headers, key in sig.DERIVED and key in request


def _check_times(entries: tuple[sig.SigEntry, ...], now: float) -> None:
    for e in entries:
        if e.expires is not None and e.expires <= now:
            raise InvalidSignature(
                f"signature {e.name!r} expired at {e.expires} (now {int(now)})",
                code="signature-expired",
            )
        if e.created is not None and e.created > now + CLOCK_SKEW:
            raise InvalidSignature(
                f"signature {e.name!r} was created in the future ({e.created})",
                code="signature-not-yet-valid",
            )


def _item(
    entries: tuple[sig.SigEntry, ...],
    fields: dict[str, str],
    derived: dict[str, str],
    body: bytes,
    covered: list[str],
) -> HttpSigItem:
    for name in fields:
        if not _FIELD_RE.fullmatch(name):
            raise InvalidMessage(f"{name!r} is not a valid header name", code="invalid-header")
    content = [(k, fields[k]) for k in (c for c in covered if not c.startswith("@"))]
    content = [(k, v) for k, v in content if k not in _PLUMBING]
    keys = dict(content)
    target = b""
    if "target" in keys:
        try:
            target = b64url_decode(keys["target"]) if _ID_RE.fullmatch(keys["target"]) else b""
        except ValueError:
            target = b""
        if len(target) != 32:
            raise InvalidMessage("target must be a 43-character base64url id (32 bytes)")
    data = body if "content-digest" in covered else keys.get("data", "").encode()
    tags = tuple((_header_case(k), v) for k, v in content if k not in ("target", "anchor", "data"))
    signers = [e for e in entries if e.asymmetric]
    public_keys = tuple(sig.decode_key(e) for e in signers)
    ids = [e.commitment_id for e in entries]
    total = sum(int.from_bytes(i, "big") for i in ids) % (1 << 256)
    raw = orjson.dumps(
        {"fields": fields, "derived": derived, "body": b64url_encode(body)},
        option=orjson.OPT_SORT_KEYS,
    )
    first = signers[0]
    rsa = first.alg == sig.RSA_PSS_SHA512
    return HttpSigItem(
        fields=tuple(sorted(fields.items())),
        derived=tuple(sorted(derived.items())),
        body=body,
        entries=entries,
        public_keys=public_keys,
        raw=raw,
        signature_type=RSA_SIGNATURE_TYPE if rsa else ED25519_SIGNATURE_TYPE,
        signature=first.signature,
        owner=public_keys[0],
        target=target,
        anchor=keys.get("anchor", "").encode(),
        tags=tags,
        data=data,
        id_bytes=ids[0] if len(ids) == 1 else total.to_bytes(32, "big"),
    )


def _header_case(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))
