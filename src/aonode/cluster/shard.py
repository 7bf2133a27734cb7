"""Which worker owns an AO process: a stable hash of its id.

sha256 rather than Python's ``hash``: the owner must be the same in every worker
process and after every restart (``hash`` of a str is salted per process).  The
first 8 bytes of the digest taken modulo ``n`` are uniform enough for any worker
count (the bias of a 64-bit value modulo a small ``n`` is below 2⁻⁵⁰).
"""

from __future__ import annotations

import hashlib


def shard_of(process_id: str, n: int) -> int:
    """The index (``0 <= i < n``) of the worker that owns ``process_id``."""
    if n < 1:
        raise ValueError(f"a cluster has at least one worker, not {n}")
    if n == 1:
        return 0
    digest = hashlib.sha256(process_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n
