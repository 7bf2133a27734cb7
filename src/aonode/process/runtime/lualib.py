"""The host half of the node's Lua libraries (``.bint``, ``.crypto``, ``.base64``).

The libraries themselves are Lua (``lualib_*.lua`` beside this file), compiled
once per node process and handed to a process's VM on its first ``require``
(:func:`library_code`).  ``.crypto``'s digests run here, on :mod:`hashlib`
(:func:`host_digest`): the harness calls it with strings and integers only,
charges the instruction budget for the bytes first, and a snapshot names the
harness's wrapper instead of copying it, so a restored process reaches the new
VM's copy.  Every answer depends on the arguments alone (deterministic).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from lupa import lua53  # type: ignore[import-untyped]

LIBRARIES = ("bint", "base64", "crypto")

_HASHLIB_NAMES = {
    b"md5": "md5",
    b"sha1": "sha1",
    b"sha256": "sha256",
    b"sha512": "sha512",
    b"sha3_256": "sha3_256",
    b"sha3_512": "sha3_512",
}


@cache
def library_code(name: bytes) -> bytes | None:
    """The compiled chunk of library ``name``, without debug info: it is copied into
    the state (and the snapshots) of every process that requires it, and aos's
    own messages from these libraries carry no line either."""
    if name.decode("ascii", "replace") not in LIBRARIES:
        return None
    path = resources.files("aonode.process.runtime") / f"lualib_{name.decode()}.lua"
    compiler = lua53.LuaRuntime(encoding=None, register_eval=False)
    dump = compiler.eval("function(s, n) return string.dump(assert(load(s, n, 't')), true) end")
    code: bytes = dump(path.read_bytes(), b"=" + name + b".lua")
    return code


def _keccak(data: bytes, rate: int, out: int) -> bytes:
    """Keccak with the original padding (0x01), as Ethereum's keccak256 (not SHA-3's 0x06)."""
    state = [0] * 25
    padded = bytearray(data)
    padded.append(0x01)
    while len(padded) % rate:
        padded.append(0)
    padded[-1] |= 0x80
    for off in range(0, len(padded), rate):
        for i in range(rate // 8):
            state[i] ^= int.from_bytes(padded[off + 8 * i : off + 8 * i + 8], "little")
        _keccak_f(state)
    return b"".join(w.to_bytes(8, "little") for w in state)[:out]


_RC = [
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
]  # fmt: skip
_ROT = [0, 1, 62, 28, 27, 36, 44, 6, 55, 20, 3, 10, 43, 25, 39]
_ROT += [41, 45, 15, 21, 8, 18, 2, 61, 56, 14]
_M64 = (1 << 64) - 1


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (64 - n))) & _M64 if n else x


def _keccak_f(a: list[int]) -> None:
    for rc in _RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rotl(c[(x + 1) % 5], 1) for x in range(5)]
        for i in range(25):
            a[i] ^= d[i % 5]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(a[x + 5 * y], _ROT[x + 5 * y])
        for x in range(5):
            for y in range(5):
                a[x + 5 * y] = b[x + 5 * y] ^ (~b[(x + 1) % 5 + 5 * y] & b[(x + 2) % 5 + 5 * y])
        a[0] ^= rc


def host_digest(algo: bytes, data: bytes, n: int, key: bytes, iterations: int = 0) -> bytes:
    """The raw digest ``algo`` of ``data``; the harness has checked the arguments.

    ``blake2b``: ``n`` output bytes (0 = 64) keyed with ``key``.
    ``pbkdf2_sha1`` / ``pbkdf2_sha256``: ``data`` is the password, ``key`` the
    salt, ``n`` the key length, ``iterations`` the rounds.
    """
    import hashlib

    if algo in _HASHLIB_NAMES:
        return hashlib.new(_HASHLIB_NAMES[algo], data).digest()
    if algo == b"blake2b":
        return hashlib.blake2b(data, digest_size=n or 64, key=key).digest()
    if algo == b"keccak256":
        return _keccak(data, 136, 32)
    if algo == b"keccak512":
        return _keccak(data, 72, 64)
    if algo in (b"pbkdf2_sha1", b"pbkdf2_sha256"):
        return hashlib.pbkdf2_hmac(algo[7:].decode(), data, key, iterations, n)
    raise ValueError(f"unknown digest {algo!r}")
