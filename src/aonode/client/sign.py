"""Wallets and the ANS-104 items the client commands sign."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from pathlib import Path

from aonode import wallet as wallet_mod
from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode
from aonode.errors import AONodeError, BadUsage, ClientError
from aonode.wallet import Wallet

Tags = list[tuple[str, str]]
ID = re.compile(r"^[A-Za-z0-9_-]{43}$")

MESSAGE_TAGS: Tags = [("Data-Protocol", "ao"), ("Variant", "ao.N.1"), ("Type", "Message")]


def load_wallet(path: Path) -> Wallet:
    """The wallet at ``path``, or a ClientError naming the file and what is wrong."""
    try:
        return wallet_mod.load(path)
    except AONodeError as exc:
        raise ClientError(exc.message) from None


def check_id(value: str, what: str = "process id") -> str:
    """``value`` if it is a 43-character base64url id (it may start with ``-``)."""
    if not ID.match(value):
        raise BadUsage(f"{value!r} is not a {what} (43 base64url characters)")
    return value


def parse_tags(pairs: Sequence[str] | None) -> Tags:
    """``["K=V", …]`` as tags; a ClientError for one without ``=`` or a name."""
    tags: Tags = []
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadUsage(f"tag {pair!r} is not K=V")
        tags.append((name, value))
    return tags


def merged(base: Tags, tags: Tags) -> Tags:
    """``base`` tags the caller did not give themselves, then the caller's."""
    names = {n.lower() for n, _ in tags}
    return [t for t in base if t[0].lower() not in names] + tags


def item(
    wallet: Wallet,
    *,
    data: bytes = b"",
    tags: Sequence[tuple[str, str]] = (),
    target: str = "",
    fresh: bool = True,
) -> ans104.DataItem:
    """A signed item.  ``fresh`` adds a random anchor, so that the same command run
    twice makes two messages (ed25519 signatures are deterministic, and a re-post
    of a known id keeps its first slot)."""
    anchor = secrets.token_urlsafe(24).encode() if fresh else b""
    raw_target = b64url_decode(check_id(target)) if target else b""
    try:
        return ans104.sign(wallet, data=data, tags=list(tags), target=raw_target, anchor=anchor)
    except AONodeError as exc:
        raise ClientError(exc.message) from None


def message(wallet: Wallet, pid: str, *, data: bytes, tags: Tags) -> ans104.DataItem:
    """An AO message to process ``pid``."""
    return item(wallet, data=data, tags=merged(MESSAGE_TAGS, tags), target=pid)


def process(wallet: Wallet, scheduler: str, *, data: bytes, tags: Tags) -> ans104.DataItem:
    """An AO process (``Type: Process``) scheduled by ``scheduler``."""
    base: Tags = [
        ("Data-Protocol", "ao"),
        ("Variant", "ao.N.1"),
        ("Type", "Process"),
        ("Device", "process@1.0"),
        ("Scheduler-Device", "scheduler@1.0"),
        ("Scheduler", scheduler),
        ("Authority", wallet.address),
    ]
    return item(wallet, data=data, tags=merged(base, tags))
