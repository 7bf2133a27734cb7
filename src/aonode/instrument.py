"""Instrumentation: one observer interface, registered once.

Every part of the node that has something to report (the store's group
commit, the signature checks, each scheduler server, the process workers,
push, cron, the HTTP boundary) calls a hook on the node's
:class:`Instruments`, which it receives when it is built.  It never knows
who listens.  :class:`Instrument` defines every hook as a no-op, so an
instrument overrides only what it observes; ``aonode.ops.metrics.NodeMetrics`` is
one, a test may add another.

An instrument that raises is removed (and the error logged once): observing
the node must never break it.  Some hooks run on the store writer's or a
signer's thread, so an instrument must be thread-safe where it keeps state.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("aonode.instrument")


class Instrument:
    """The hooks, each a no-op here (see the module docstring)."""

    def committed(self, items: int, seconds: float) -> None:
        """The store committed ``items`` rows in one transaction taking ``seconds``."""

    def verified(self, seconds: float) -> None:
        """An incoming message's signature was checked in ``seconds``."""

    def signed(self, seconds: float) -> None:
        """A scheduler server signed one assignment in ``seconds``."""

    def assigned(self, mode: str, durable: bool, latency: float | None) -> None:
        """A new slot given under ``mode``: ``durable``, it is durable now (once per
        slot); ``latency``, its client is answered now, that many seconds after the
        request arrived (once per slot, None when not at this call).  In
        ``local_confirmation`` both come in one call."""

    def applied(self, slots: int) -> None:
        """A process worker applied ``slots`` slots."""

    def push_delivered(self, local: bool, entry: dict[str, Any]) -> None:
        """A push delivered one outbox entry (to this node or another)."""

    def push_failed(self, reason: str) -> None:
        """An outbox entry could not be delivered to another node (counted once)."""

    def cron_fired(self, task: str, ok: bool) -> None:
        """A cron task ran."""

    def http_request(self, method: str, path: str, status: int) -> None:
        """An HTTP request was answered."""


_HOOKS = tuple(
    name for name, value in vars(Instrument).items() if callable(value) and not name.startswith("_")
)


class Instruments(Instrument):
    """The node's instruments: each hook calls every registered instrument."""

    def __init__(self) -> None:
        self._active: tuple[Instrument, ...] = ()
        # per hook, the (instrument, bound method) pairs that override it: a hook
        # call touches only instruments that listen to it
        self._listeners: dict[str, tuple[tuple[Instrument, Any], ...]] = dict.fromkeys(_HOOKS, ())
        self._lock = threading.Lock()

    def _set(self, active: tuple[Instrument, ...]) -> None:
        self._active = active
        self._listeners = {
            name: tuple(
                (i, getattr(i, name))
                for i in active
                if getattr(getattr(i, name), "__func__", None) is not getattr(Instrument, name)
            )
            for name in _HOOKS
        }

    def register(self, instrument: Instrument) -> None:
        with self._lock:
            self._set((*self._active, instrument))

    def unregister(self, instrument: Instrument) -> None:
        with self._lock:
            self._set(tuple(i for i in self._active if i is not instrument))

    @property
    def active(self) -> tuple[Instrument, ...]:
        return self._active

    def _broken(self, instrument: Instrument, hook: str) -> None:
        log.exception("instrument %r failed in %s: removed", instrument, hook)
        self.unregister(instrument)


def _fan_out(name: str) -> Any:
    def hook(self: Instruments, *args: Any) -> None:
        for instrument, method in self._listeners[name]:
            try:
                method(*args)
            except Exception:
                self._broken(instrument, name)

    hook.__name__ = name
    hook.__doc__ = getattr(Instrument, name).__doc__
    return hook


for _name in _HOOKS:
    setattr(Instruments, _name, _fan_out(_name))
