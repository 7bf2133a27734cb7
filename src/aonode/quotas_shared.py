"""Token buckets shared by every worker of a cluster: one table in a mapped file.

A cluster (aonode.cluster) serves one port from N processes; buckets kept in
each process would let a signer through N times its quota.  So the supervisor
creates one file, every worker maps it (``mmap``, ``MAP_SHARED``) and each
charge is one read-modify-write under ``flock`` on that file: a syscall pair,
no message between processes.  The clock is ``time.monotonic`` (one clock for
the whole machine on Linux) unless a test injects one.

The file: a header (magic, keys per region, regions), then one region per
quota (:data:`REGIONS`), each a fixed array of ``max(keys, WINDOW)`` entries
``(key hash: u64, tokens: f64, last time: f64)``; hash 0 is an empty entry.  A
key lives in the :data:`WINDOW` entries from ``hash % (entries - WINDOW + 1)``
(open addressing, no wrap-around); when they are all taken by other keys the
one idle longest is evicted, and a key evicted starts again with a full
bucket, as the in-process LRU does.  Memory is fixed by ``quota_keys``.  Two
keys whose 8-byte BLAKE2b hashes collide share a bucket (odds 2**-64 a pair).

The lock is per open file, so one process opens the table once (the worker's
web layer, on its event loop thread).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import time
from pathlib import Path

from aonode.errors import ConfigError
from aonode.quotas import Buckets, BucketsFactory, Clock, Rate, Taker

MAGIC = b"AOQUOTA1"
REGIONS = ("messages", "spawns", "stored_bytes", "reads")
WINDOW = 8  # entries probed for a key; a full window evicts its longest idle
_HEADER = struct.Struct("<8sQQ")
_HEADER_SIZE = 64
_ENTRY = struct.Struct("<Qdd")
_WINDOW = struct.Struct("<" + "Qdd" * WINDOW)


def entries_for(keys: int) -> int:
    """Entries per region for ``quota_keys`` ``keys``."""
    return max(keys, WINDOW)


def table_size(keys: int) -> int:
    return _HEADER_SIZE + len(REGIONS) * entries_for(keys) * _ENTRY.size


def create_table(path: Path, keys: int) -> None:
    """A fresh, empty table at ``path`` (whatever was there is replaced)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, table_size(keys))  # zeros: every entry empty
        os.pwrite(fd, _HEADER.pack(MAGIC, entries_for(keys), len(REGIONS)), 0)
    finally:
        os.close(fd)


class QuotaTable:
    """The shared file, mapped; :meth:`buckets` gives one quota's buckets in it."""

    def __init__(self, path: Path) -> None:
        """Map ``path``; :class:`ConfigError` when it is not a table (short, corrupt)."""
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise ConfigError(f"quota table {path}: {exc.strerror}") from None
        try:
            size = os.fstat(self._fd).st_size
            head = os.pread(self._fd, _HEADER.size, 0)
            if len(head) < _HEADER.size:
                raise ConfigError(f"quota table {path}: {size} bytes, not a quota table")
            magic, entries, regions = _HEADER.unpack(head)
            if magic != MAGIC or regions != len(REGIONS) or entries < WINDOW:
                raise ConfigError(f"quota table {path}: corrupt header (not made by aonode?)")
            if size != table_size(entries):
                raise ConfigError(
                    f"quota table {path}: {size} bytes, want {table_size(entries)} "
                    f"for {entries} keys (truncated?)"
                )
            self.entries = int(entries)
            self._map = mmap.mmap(self._fd, size, mmap.MAP_SHARED)
        except BaseException:
            os.close(self._fd)
            raise

    def buckets(self, name: str, rate: Rate, clock: Clock = time.monotonic) -> SharedBuckets:
        """The buckets of quota ``name`` (one of :data:`REGIONS`) at ``rate``."""
        return SharedBuckets(self, REGIONS.index(name), rate, clock)

    def used(self, name: str) -> int:
        """Entries of quota ``name`` holding a key (tests, the bound)."""
        start = _HEADER_SIZE + REGIONS.index(name) * self.entries * _ENTRY.size
        return sum(
            1
            for i in range(self.entries)
            if _ENTRY.unpack_from(self._map, start + i * _ENTRY.size)[0]
        )

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class SharedBuckets:
    """:class:`aonode.quotas.Buckets`' contract, over one region of a :class:`QuotaTable`."""

    def __init__(self, table: QuotaTable, region: int, rate: Rate, clock: Clock) -> None:
        self.rate = rate
        self._clock = clock
        self._fd = table._fd
        self._map = table._map
        self._base = _HEADER_SIZE + region * table.entries * _ENTRY.size
        self._starts = table.entries - WINDOW + 1

    def take(self, key: str, cost: float = 1.0) -> int | None:
        """As :meth:`Buckets.take`: ``None`` if granted, else seconds to wait."""
        rate = self.rate
        if rate.off:
            return None
        h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1
        window = self._base + (h % self._starts) * _ENTRY.size
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            now = self._clock()  # under the lock: times written never go back
            seen = _WINDOW.unpack_from(self._map, window)
            slot, tokens, at = _find(seen, h, rate.burst, now)
            tokens = min(rate.burst, tokens + max(0.0, now - at) * rate.per_second)
            granted = tokens >= cost
            left = tokens - cost if granted else tokens
            _ENTRY.pack_into(self._map, window + slot * _ENTRY.size, h, left, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        if granted:
            return None
        return Buckets.wait_for(rate, tokens, cost)


def _find(seen: tuple[float, ...], h: int, burst: float, now: float) -> tuple[int, float, float]:
    """(entry, tokens, last time) of hash ``h`` in a window: its own, else an empty
    one, else the one idle longest (evicted), both with a full bucket."""
    oldest, oldest_at = 0, seen[2]
    for i in range(WINDOW):
        kh = seen[3 * i]
        if kh == h:
            return i, seen[3 * i + 1], seen[3 * i + 2]
        if kh == 0:
            return i, burst, now
        if seen[3 * i + 2] < oldest_at:
            oldest, oldest_at = i, seen[3 * i + 2]
    return oldest, burst, now


def shared_factory(table: QuotaTable, clock: Clock = time.monotonic) -> BucketsFactory:
    """A ``buckets`` factory for :class:`aonode.quotas.Quotas` backed by ``table``."""

    def make(name: str, rate: Rate) -> Taker:
        return table.buckets(name, rate, clock)

    return make
