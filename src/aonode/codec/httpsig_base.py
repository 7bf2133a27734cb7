"""RFC 9421 signatures as HyperBEAM's ``httpsig@1.0`` writes them: parsing and checking.

This is the cryptographic half of :mod:`aonode.codec.httpsig` (which turns a
verified request into a message).  What HyperBEAM and its JS client ``hbsig``
put on the wire::

    signature-input: http-sig-<hex>=("@path" "action" "content-digest" ...)
                       ;alg="rsa-pss-sha512";keyid="<b64url n>"   (one line on the wire)
    signature:       http-sig-<hex>=:<base64 signature>:
    content-digest:  sha-256=:<base64 sha256(body)>:

Both signature headers are structured-field dictionaries (parsed with
``http-sfv``); each member of one names a member of the other.

The signature base follows RFC 9421 §2.5 with HyperBEAM's one twist: a derived
component ``@x`` is read from the message key ``x`` (the ``path`` header, not
the request line) and its line is written ``"x": value``.  A request signed by
a plain RFC 9421 signer (``"@path": /req/path``) verifies too: when a
signature covers derived components both bases are tried.

Algorithms (``alg``): ``rsa-pss-sha512`` (HyperBEAM's wallets; ``keyid`` is
the RSA modulus n, e = 65537; any PSS salt length), ``ed25519`` (RFC 9421;
``keyid`` the 32-byte public key) and ``hmac-sha256`` (HyperBEAM's content
commitment, ``keyid="ao"``: a checksum anyone can compute, so it never makes a
message signed on its own).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature as _CryptoInvalid
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from http_sfv.dictionary import Dictionary
from http_sfv.item import InnerList, Item

from aonode.errors import InvalidMessage, InvalidSignature, UnsupportedSignature
from aonode.wallet import ED25519_SIGNATURE_TYPE
from aonode.wallet import verify as verify_signature

__all__ = [
    "ASYMMETRIC",
    "DERIVED",
    "SigEntry",
    "check_digest",
    "component_value",
    "decode_key",
    "parse_signatures",
    "signature_base",
    "verify_all",
    "verify_entry",
]

RSA_PSS_SHA512 = "rsa-pss-sha512"
ED25519 = "ed25519"
HMAC_SHA256 = "hmac-sha256"
ASYMMETRIC = frozenset({RSA_PSS_SHA512, ED25519})
ALGORITHMS = ASYMMETRIC | {HMAC_SHA256}

DERIVED = ("method", "path", "query", "authority")
"""Derived components (``@x``) the node can take from the request itself."""

_SHA512 = hashes.SHA512()
_PSS_VERIFY = padding.PSS(mgf=padding.MGF1(_SHA512), salt_length=padding.PSS.AUTO)
_MIN_RSA_BYTES = 256  # 2048-bit moduli and up


@dataclass(frozen=True, slots=True)
class SigEntry:
    """One member of the ``signature``/``signature-input`` dictionaries."""

    name: str
    components: tuple[str, ...]  # as written, e.g. "@path", "action"
    params: InnerList  # the parsed inner list: its str() is the params line
    alg: str
    keyid: str
    signature: bytes
    created: int | None
    expires: int | None

    @property
    def asymmetric(self) -> bool:
        return self.alg in ASYMMETRIC

    @property
    def commitment_id(self) -> bytes:
        """HyperBEAM's commitment id: sha256 of the signature, a 32-byte HMAC as is."""
        if self.alg == HMAC_SHA256 and len(self.signature) == 32:
            return self.signature
        return hashlib.sha256(self.signature).digest()


def _dictionary(name: str, value: str) -> Dictionary:
    parsed = Dictionary()
    code = "invalid-content-digest" if name == "content-digest" else "invalid-signature-input"
    try:
        parsed.parse(value.encode("latin-1"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidMessage(
            f"the {name} header is not a structured-field dictionary (RFC 8941): {exc}", code=code
        ) from None
    if not parsed:
        raise InvalidMessage(f"the {name} header is empty", code=code)
    return parsed


def parse_signatures(signature: str, signature_input: str) -> list[SigEntry]:
    """Pair up the members of the two headers, in the ``signature`` header's order."""
    sigs = _dictionary("signature", signature)
    inputs = _dictionary("signature-input", signature_input)
    if set(sigs) != set(inputs):
        raise InvalidMessage(
            "signature and signature-input name different signatures "
            f"({sorted(sigs)} vs {sorted(inputs)})",
            code="invalid-signature-input",
        )
    return [_entry(name, sigs[name], inputs[name]) for name in sigs]


def _entry(name: str, sig: object, inner: object) -> SigEntry:
    bad = f"signature-input {name!r}"
    if not isinstance(inner, InnerList):
        raise InvalidMessage(f"{bad} must be an inner list", code="invalid-signature-input")
    if not isinstance(sig, Item) or not isinstance(sig.value, bytes):
        raise InvalidMessage(
            f"signature {name!r} must be a byte sequence (:base64:)",
            code="invalid-signature-input",
        )
    components: list[str] = []
    for item in inner:
        if not isinstance(item.value, str) or item.value != item.value.lower():
            raise InvalidMessage(
                f"{bad}: component {item} must be a lowercase string",
                code="invalid-signature-input",
            )
        if item.params:
            raise InvalidMessage(
                f"{bad}: component parameters ({item}) are not supported",
                code="invalid-signature-input",
            )
        if item.value in components:
            raise InvalidMessage(
                f"{bad}: component {item} is listed twice", code="invalid-signature-input"
            )
        components.append(item.value)
    if not components:
        raise InvalidMessage(f"{bad} covers no components", code="invalid-signature-input")
    params = inner.params
    alg, keyid = params.get("alg"), params.get("keyid")
    if not isinstance(alg, str) or not isinstance(keyid, str):
        raise InvalidMessage(
            f'{bad} needs string parameters alg and keyid (e.g. alg="rsa-pss-sha512")',
            code="invalid-signature-input",
        )
    if alg not in ALGORITHMS:
        raise UnsupportedSignature(
            f"{bad}: algorithm {alg!r} is not supported (use one of {sorted(ALGORITHMS)})"
        )
    times: dict[str, int | None] = {}
    for key in ("created", "expires"):
        value = params.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidMessage(f"{bad}: {key} must be an integer", code="invalid-signature-input")
        times[key] = value
    return SigEntry(
        name, tuple(components), inner, alg, keyid, sig.value, times["created"], times["expires"]
    )


def decode_key(entry: SigEntry) -> bytes:
    """The public key a ``keyid`` carries: base64url or base64, ``publickey:`` prefix allowed."""
    text = entry.keyid.removeprefix("publickey:")
    try:
        key = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise InvalidMessage(
            f"signature {entry.name!r}: keyid is not a base64 public key",
            code="invalid-signature-input",
        ) from None
    if entry.alg == ED25519 and len(key) != 32:
        raise InvalidMessage(
            f"signature {entry.name!r}: an ed25519 keyid must be 32 bytes, not {len(key)}",
            code="invalid-signature-input",
        )
    if entry.alg == RSA_PSS_SHA512 and len(key) < _MIN_RSA_BYTES:
        raise InvalidMessage(
            f"signature {entry.name!r}: an RSA keyid (modulus) must be at least 2048 bits",
            code="invalid-signature-input",
        )
    return key


def component_value(
    name: str, fields: Mapping[str, str], derived: Mapping[str, str], *, hyperbeam: bool
) -> str | None:
    """A covered component's value, or None when the message lacks it.

    A header field is looked up by name.  A derived ``@x`` is, HyperBEAM's way,
    the message key ``x`` (else the request's own value); RFC 9421's way, the
    request's value only.
    """
    if not name.startswith("@"):
        return fields.get(name)
    key = name[1:]
    if hyperbeam and key in fields:
        return fields[key]
    return derived.get(key)


def signature_base(
    entry: SigEntry, fields: Mapping[str, str], derived: Mapping[str, str], *, hyperbeam: bool
) -> bytes | None:
    """The RFC 9421 signature base of ``entry``; None if a covered component is missing.

    ``hyperbeam`` writes derived components without their ``@`` and reads them
    as message keys (HyperBEAM's form); otherwise as RFC 9421 does.
    """
    lines = []
    for name in entry.components:
        value = component_value(name, fields, derived, hyperbeam=hyperbeam)
        if value is None:
            return None
        label = name[1:] if hyperbeam and name.startswith("@") else name
        lines.append(f'"{label}": {value.strip()}')
    lines.append(f'"@signature-params": {entry.params}')
    try:
        return "\n".join(lines).encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidMessage(
            "a covered header value is not ISO-8859-1 text", code="invalid-header"
        ) from None


def verify_entry(entry: SigEntry, key: bytes, base: bytes) -> bool:
    """Whether ``entry.signature`` signs ``base`` with ``key`` (never raises)."""
    try:
        if entry.alg == RSA_PSS_SHA512:
            public = rsa.RSAPublicNumbers(65537, int.from_bytes(key, "big")).public_key()
            public.verify(entry.signature, base, _PSS_VERIFY, _SHA512)
            return True
        if entry.alg == ED25519:  # the node's one ed25519 check (libsodium, strict)
            return verify_signature(ED25519_SIGNATURE_TYPE, key, base, entry.signature)
        if entry.alg == HMAC_SHA256:
            expected = hmac.digest(entry.keyid.encode(), base, "sha256")
            return hmac.compare_digest(expected, entry.signature)
    except (_CryptoInvalid, ValueError, TypeError, OverflowError):
        return False
    return False


_DIGESTS = {"sha-256": "sha256", "sha-512": "sha512"}


def check_digest(header: str, body: bytes) -> None:
    """Raise unless the ``content-digest`` header (RFC 9530) matches ``body``."""
    digests = _dictionary("content-digest", header)
    known = [(k, v) for k, v in digests.items() if k in _DIGESTS]
    if not known:
        raise InvalidMessage(
            f"content-digest names no supported algorithm ({sorted(_DIGESTS)})",
            code="invalid-content-digest",
        )
    for algorithm, item in known:
        value = item.value if isinstance(item, Item) else None
        if not isinstance(value, bytes) or value != hashlib.new(_DIGESTS[algorithm], body).digest():
            raise InvalidSignature(
                f"content-digest {algorithm} does not match the body",
                code="content-digest-mismatch",
            )


def verify_all(
    entries: list[SigEntry],
    fields: Mapping[str, str],
    derived: Mapping[str, str],
    keys: Mapping[str, bytes],
) -> None:
    """Raise ``InvalidSignature`` unless every entry verifies (in either base form)."""
    for entry in entries:
        key = keys.get(entry.name, b"")
        forms = [True, False] if any(c.startswith("@") for c in entry.components) else [True]
        bases = (signature_base(entry, fields, derived, hyperbeam=form) for form in forms)
        if not any(base is not None and verify_entry(entry, key, base) for base in bases):
            raise InvalidSignature(f"signature {entry.name!r} ({entry.alg}) does not verify")
