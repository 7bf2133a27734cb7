"""Per-signer and per-client quotas: token buckets and dry-run slots.

A public node meets floods: one signer posting thousands of messages, a
stranger spawning hundreds of processes, a client holding every dry-run
worker.  Each quota is a token bucket (a burst, then a steady rate) keyed by
who asks — the signer's address once its signature verified, else the
client's network address — so one party's flood is refused (429 +
``Retry-After``) while everyone else goes on.  The defaults are set so a
person using aos or aoconnect never meets them and a script flooding does.

The table of buckets is an LRU of bounded size: strangers cannot grow it, and
a key evicted (idle longest) only starts again with a full bucket.  The clock
is injected so tests drive refills without sleeping.  Nothing here does I/O.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from aonode.errors import ConfigError, QuotaExceeded

Clock = Callable[[], float]

_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0, "day": 86400.0}
_SIZES = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
}
_RATE_RE = re.compile(r"^\s*([0-9.]+)\s*([a-z]*)\s*:\s*([0-9.]+)\s*([a-z]*)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's shape: ``burst`` tokens at most, refilled at ``per_second``.

    ``OFF`` (burst 0) means no limit: an operator's explicit choice (tests and
    benches that flood on purpose use it), never a default."""

    burst: float
    per_second: float

    @property
    def off(self) -> bool:
        return self.burst <= 0

    def __str__(self) -> str:
        if self.off:
            return "off"
        for unit, seconds in (("s", 1.0), ("min", 60.0), ("h", 3600.0), ("day", 86400.0)):
            amount = self.per_second * seconds
            if amount >= 1 and abs(amount - round(amount)) < 1e-6:
                return f"{int(self.burst)}:{round(amount)}/{unit}"
        return f"{int(self.burst)}:{self.per_second:g}/s"


OFF = Rate(0, 0)


def parse_rate(text: str) -> Rate:
    """``500:20/s``, ``50:6/min``, ``1GiB:1GiB/day`` (burst:amount/period), or ``off``."""
    low = text.strip().lower()
    if low in ("off", "0", "none"):
        return OFF
    m = _RATE_RE.match(low)
    if m is None or m.group(2) not in _SIZES or m.group(4) not in _SIZES:
        raise ConfigError(
            f"not a rate: {text!r} (want BURST:AMOUNT/PERIOD, e.g. 500:20/s, 50:6/min, "
            "1GiB:1GiB/day, or off)"
        )
    if m.group(5) not in _PERIODS:
        raise ConfigError(f"rate {text!r}: period must be one of {', '.join(_PERIODS)}")
    try:
        burst = float(m.group(1)) * _SIZES[m.group(2)]
        amount = float(m.group(3)) * _SIZES[m.group(4)]
    except ValueError:
        raise ConfigError(f"not a rate: {text!r}") from None
    if burst < 1 or amount <= 0:
        raise ConfigError(f"rate {text!r}: burst must be at least 1 and the amount positive")
    return Rate(burst, amount / _PERIODS[m.group(5)])


class Buckets:
    """Token buckets of one :class:`Rate`, one per key, at most ``max_keys`` kept."""

    def __init__(self, rate: Rate, *, max_keys: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self._max_keys = max(1, max_keys)
        self._clock = clock
        self._table: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, at)

    def __len__(self) -> int:
        return len(self._table)

    def take(self, key: str, cost: float = 1.0) -> int | None:
        """Take ``cost`` tokens for ``key``; ``None`` if granted, else seconds to wait.

        A refused request takes nothing, so a client that waits the answered
        time gets through; a cost above the burst can never pass and says so by
        waiting for a full bucket."""
        if self.rate.off:
            return None
        now = self._clock()
        tokens, at = self._table.pop(key, (self.rate.burst, now))
        tokens = min(self.rate.burst, tokens + (now - at) * self.rate.per_second)
        if tokens >= cost:
            self._keep(key, tokens - cost, now)
            return None
        self._keep(key, tokens, now)
        return self.wait_for(self.rate, tokens, cost)

    @staticmethod
    def wait_for(rate: Rate, tokens: float, cost: float) -> int:
        """Whole seconds until a bucket of ``rate`` holding ``tokens`` can pay ``cost``."""
        missing = min(cost, rate.burst) - tokens
        return max(1, math.ceil(missing / rate.per_second))

    def _keep(self, key: str, tokens: float, now: float) -> None:
        self._table[key] = (tokens, now)
        while len(self._table) > self._max_keys:
            self._table.popitem(last=False)


class Taker(Protocol):
    """What a quota charges: :class:`Buckets` here, ``quotas_shared.SharedBuckets``
    (one table for every worker of a cluster)."""

    @property
    def rate(self) -> Rate: ...

    def take(self, key: str, cost: float = 1.0) -> int | None: ...


#: the buckets of one quota, by name ("messages", "spawns", "stored_bytes", "reads")
BucketsFactory = Callable[[str, Rate], Taker]


class Slots:
    """At most ``per_key`` concurrent holders per key and ``total`` in all (0: no limit).

    Dry runs hold a worker; a client firing many at once would starve the
    process's real messages.  Refusal is immediate (429), never a queue."""

    def __init__(self, *, per_key: int, total: int) -> None:
        self.per_key, self.total = per_key, total
        self._held: dict[str, int] = {}
        self._all = 0

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        mine = self._held.get(key, 0)
        if self.per_key and mine >= self.per_key:
            raise QuotaExceeded(
                f"{mine} dry runs of {key} are running; at most {self.per_key} at a time",
                retry_after=1,
            )
        if self.total and self._all >= self.total:
            raise QuotaExceeded(
                f"the node runs {self._all} dry runs; at most {self.total} at a time",
                retry_after=1,
            )
        self._held[key] = mine + 1
        self._all += 1
        try:
            yield
        finally:
            self._all -= 1
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]


class Quotas:
    """Every quota of one node.  ``charge`` raises :class:`QuotaExceeded` (429)."""

    def __init__(
        self,
        *,
        messages: Rate,
        spawns: Rate,
        stored_bytes: Rate,
        reads: Rate,
        dryruns_per_client: int,
        dryruns_total: int,
        max_keys: int,
        clock: Clock = time.monotonic,
        buckets: BucketsFactory | None = None,
    ) -> None:
        """``buckets``: where each quota's buckets live (default: in this process,
        a :class:`Buckets` of ``max_keys`` keys)."""

        def local(_name: str, rate: Rate) -> Taker:
            return Buckets(rate, max_keys=max_keys, clock=clock)

        make = buckets or local
        self.messages = make("messages", messages)
        self.spawns = make("spawns", spawns)
        self.stored_bytes = make("stored_bytes", stored_bytes)
        self.reads = make("reads", reads)
        self.dryruns = Slots(per_key=dryruns_per_client, total=dryruns_total)

    def charge_message(self, signer: str, *, spawn: bool) -> None:
        """A signed message or spawn about to be scheduled (or a signed request)."""
        if spawn:
            _check(self.spawns.take(signer), f"spawns by {signer}", self.spawns.rate)
        _check(self.messages.take(signer), f"messages by {signer}", self.messages.rate)

    def charge_store(self, signer: str, size: int) -> None:
        """A message about to be stored by ``/~message@1.0/store``: its bytes count."""
        _check(self.messages.take(signer), f"messages by {signer}", self.messages.rate)
        wait = self.stored_bytes.take(signer, float(size))
        _check(wait, f"stored bytes by {signer}", self.stored_bytes.rate)

    def charge_read(self, client: str) -> None:
        """An unsigned request (a read or a dry run) from network address ``client``."""
        _check(self.reads.take(client), f"requests from {client}", self.reads.rate)


def _check(wait: int | None, what: str, rate: Rate) -> None:
    if wait is not None:
        raise QuotaExceeded(
            f"quota exceeded: {what} (at most {rate}); retry in {wait} s", retry_after=wait
        )
