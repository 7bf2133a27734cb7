"""Unpadded base64url, the encoding of every id, key and blob in AO and Arweave.

The decoder is strict on purpose: ids and signatures arrive from the network,
and a lenient decoder (Python's own skips stray characters and ignores
non-zero trailing bits) would let two different strings name the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["b64url_decode", "b64url_encode"]

_BODY = re.compile(r"[A-Za-z0-9_-]*")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# For a final group of 2 (3) characters only the top 4 (2) bits of the last
# character carry data; the rest must be zero for the encoding to be canonical.
_UNUSED_BITS_MASK = {2: 0x0F, 3: 0x03}


_TO_URL = bytes.maketrans(b"+/", b"-_")


def b64url_encode(b: bytes) -> str:
    """Encode without padding, as Arweave and AO write every binary value."""
    # binascii directly: a dozen encodes per scheduled message, so the wrappers show;
    # ``=`` is only ever padding, so one translate maps the alphabet and drops it.
    return binascii.b2a_base64(b, newline=False).translate(_TO_URL, b"=").decode("ascii")


def b64url_decode(s: str) -> bytes:
    """Decode padded or unpadded base64url; raise ``ValueError`` on anything else.

    Rejected: characters outside the url-safe alphabet (including ``+`` and
    ``/``), wrong padding, impossible lengths and non-canonical trailing bits.
    """
    if not isinstance(s, str):
        raise ValueError(f"base64url input must be a str, not {type(s).__name__}")
    body = s.rstrip("=")
    pad = len(s) - len(body)
    if pad and (len(s) % 4 or pad != -len(body) % 4):
        raise ValueError("base64url input has wrong padding")
    if not body.isascii() or _BODY.fullmatch(body) is None:
        raise ValueError("base64url input has a character outside A-Z a-z 0-9 - _")
    rem = len(body) % 4
    if rem == 1:
        raise ValueError("base64url input has an impossible length")
    if rem and _ALPHABET.index(body[-1]) & _UNUSED_BITS_MASK[rem]:
        raise ValueError("base64url input has non-zero trailing bits")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error as exc:  # pragma: no cover - excluded by the checks above
        raise ValueError(f"invalid base64url: {exc}") from None
