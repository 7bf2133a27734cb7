"""The hyper-aos Lua module under HyperBEAM's ``lua@5.3a`` contract, on lupa.

Mainnet aos processes on HyperBEAM run ``dev_lua`` with the hyper-aos module: a
Lua program that defines a global ``compute(base, req, opts)``.  ``base`` is
the process state message (its ``process`` key is the signed process message),
``req`` is the assignment (``slot``, ``timestamp``, ``block-timestamp`` …, and
``body``: the scheduled message with lowercase keys and ``commitments``).  The
module returns ``base`` with ``results = {outbox = {"1" = msg, …}, output =
{data, prompt}}``.  This runtime builds those shapes from our aos-shaped
``msg``/``env`` and maps the results back (see ``docs/hyper-aos.md``).

Why the odd parts:

* ``dev_lua_lib:install`` runs *after* the modules load and replaces the global
  ``ao`` with a decoded-and-re-encoded copy of it (data copied, functions shared)
  plus ``ao.event/get/set/resolve``.  hyper-aos behaves differently with and
  without that copy (e.g. Eval parse errors land in the copy), so we copy too.
* HyperBEAM's Lua state is immutable: when ``compute`` raises, the state before
  the message survives.  A lupa state cannot be copied, so we keep a base (a
  snapshot, or the modules freshly loaded) and the inputs of every message
  committed since, and rebuild by restore + replay after a raise.  Dry runs go
  to a replica restored from the live state's dump.  Replay is exact only
  because the VM is deterministic: sorted ``pairs``, ``os.time`` = block
  timestamp, a seeded per-VM ``math.random``, counters in place of addresses in
  ``tostring``.
* Snapshots use the same serializer as the built-in runtime (``lua_snapshot.lua``),
  loaded before the host prelude replaces ``debug``/``load``/``string.dump``;
  the root is the globals table itself, and every function the host provides is
  a *known* object written by name (so a restored state gets the new VM's
  shims, not copies of the old ones).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import lupa.lua53 as lua  # type: ignore[import-untyped]  # lupa ships no stubs

from aonode.process.runtime import hyperaos_shapes as shapes
from aonode.process.runtime.base import Json, Limits, Results

_HOOK_STEP = 1000

# Runs first in a fresh state: the sandbox and the determinism shims.  Returns
# the harness functions that Python calls.
_RESOURCES = resources.files("aonode.process.runtime")
_PRELUDE = (_RESOURCES / "hyperaos_host.lua").read_text().replace("HOOK_STEP", str(_HOOK_STEP))
_SERIALIZER = (_RESOURCES / "lua_snapshot.lua").read_bytes()
_MAGIC = b"AONODE-HYPER-AOS-1\n"


@dataclass(frozen=True, slots=True)
class _Call:
    """Everything one compute call needs; replaying these rebuilds the state."""

    base: Json
    req: Json
    seed: int
    now: int


@dataclass(frozen=True, slots=True)
class _Outcome:
    raised: bool
    result: Any = None
    error: str | None = None  # hyper-aos's own error text when it has one
    lua_error: str | None = None  # what compute raised (dev_lua's 500 body)
    trace: str | None = None


class ModuleLoadError(ValueError):
    """A module's source does not load: a syntax error, a failing ``require``, a raise.

    ``module`` is the chunk's name (the module's id when the device knows it),
    ``reason`` the loader's own words; the device turns it into a 400 at spawn."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(f"Lua module {module} failed to load: {reason}")
        self.module = module
        self.reason = reason


def check_modules(
    sources: Sequence[str], names: Sequence[str] = (), limits: Limits | None = None
) -> None:
    """Load ``sources`` in a throw-away VM, so a spawn can be refused before any slot.

    Raises :class:`ModuleLoadError`; a module that loads here loads at boot too
    (loading is deterministic and sees no message)."""
    _VM.fresh(sources, limits or Limits(), names)


class NotSnapshottable(NotImplementedError):
    """The state holds something the serializer cannot write (e.g. a coroutine)."""


class _VM:
    """One lupa Lua 5.3 state with the serializer, the host prelude and (unless
    restored from a snapshot) the modules and the library."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._rt: Any = lua.LuaRuntime(
            encoding=None,
            max_memory=limits.memory,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
        )
        serializer = self._rt.execute(_SERIALIZER)  # first: it keeps the real debug/load
        self._h: Any = self._rt.execute(_PRELUDE.encode(), serializer)

    @classmethod
    def fresh(cls, sources: Sequence[str], limits: Limits, names: Sequence[str] = ()) -> _VM:
        vm = cls(limits)
        for i, src in enumerate(sources):
            name = names[i] if i < len(names) else ("hyper-aos" if i == 0 else f"module-{i}")
            try:
                vm._h.load_module(src.encode(), name.encode(), limits.instructions)
            except lua.LuaMemoryError:
                raise ModuleLoadError(name, "Lua memory limit exceeded") from None
            except lua.LuaError as exc:
                raise ModuleLoadError(name, shapes.text(exc.args[0]) if exc.args else "") from None
        vm._h.install()
        return vm

    @classmethod
    def restored(cls, state: bytes, limits: Limits) -> _VM:
        vm = cls(limits)
        try:
            vm._h.restore(state)
        except lua.LuaError as exc:
            raise ValueError(f"not a usable hyper-aos snapshot: {exc}") from None
        return vm

    def dump(self) -> bytes:
        try:
            state: bytes = self._h.dump()
        except lua.LuaError as exc:
            raise NotSnapshottable(str(exc)) from None
        return state

    def run(self, call: _Call) -> _Outcome:
        try:
            base, req = shapes.to_lua(self._rt, call.base), shapes.to_lua(self._rt, call.req)
            status, result, handled, trace = self._h.run(
                base, req, call.seed, call.now, self._limits.instructions
            )
            if shapes.text(status) != "ok":
                raw = shapes.text(result)
                best = shapes.text(handled) if handled is not None else raw
                return _Outcome(True, None, best, raw, shapes.opt_text(trace))
            results = result[b"results"] if lua.lua_type(result) == "table" else None
            value = (
                {"results": shapes.from_lua(results)}
                if results is not None
                else shapes.from_lua(result)
            )
            return _Outcome(False, value, shapes.opt_text(handled))
        except lua.LuaMemoryError:
            return _Outcome(True, error="aonode: Lua memory limit exceeded")
        except (lua.LuaError, ValueError, RecursionError) as exc:
            return _Outcome(True, error=f"aonode: {exc}")


@dataclass(frozen=True, slots=True)
class _Position:
    """What the next call is built from, besides the message: kept in snapshots."""

    pid: str
    process: Json  # the process message as hyper-aos sees it (``base.process``)
    next_slot: int
    last_timestamp: int


class HyperAOSRuntime:
    """A process running ``module_sources`` (hyper-aos first) as ``lua@5.3a`` would.

    The state is a base (the modules freshly loaded, or a snapshot) plus the
    journal of calls committed since; it is rebuilt from them when a call
    raised or a dry run touched the live VM.  Every ``checkpoint_every``
    committed calls the live state is dumped and becomes the base, so a rebuild
    replays at most that many.  :meth:`snapshot` bytes restore with
    :meth:`restore` without the module sources (the functions are in them).
    """

    def __init__(
        self,
        module_sources: Sequence[str],
        *,
        limits: Limits | None = None,
        checkpoint_every: int = 1000,
        names: Sequence[str] = (),
    ) -> None:
        if not module_sources:
            raise ValueError("HyperAOSRuntime needs at least one Lua module source")
        self._sources = tuple(module_sources)
        self._names = tuple(names)  # chunk names (module ids); default: hyper-aos, module-1…
        # Why every message fails, when the modules did not load at boot (checked at
        # spawn, so only a module that loaded then and not now: each message says so).
        self._broken: str | None = None
        self._limits = limits or Limits()
        self._checkpoint_every = max(1, checkpoint_every)
        self._vm: _VM | None = None
        self._base: bytes | None = None  # None: the modules, fresh
        self._journal: list[_Call] = []
        self._dirty = False
        self._dumped: bytes | None = None  # the live state's dump, until it changes
        self._pos = _Position("", {}, 0, 0)
        self._booted = False

    @classmethod
    def restore(cls, snapshot: bytes, *, limits: Limits | None = None) -> HyperAOSRuntime:
        """A runtime resumed from :meth:`snapshot`'s bytes."""
        if not snapshot.startswith(_MAGIC):
            raise ValueError("not a hyper-aos snapshot")
        size = int.from_bytes(snapshot[len(_MAGIC) : len(_MAGIC) + 4], "big")
        head = len(_MAGIC) + 4
        pos = json.loads(snapshot[head : head + size])
        rt = cls(("",), limits=limits)
        rt._sources = ()
        rt._pos = _Position(pos["pid"], pos["process"], pos["next_slot"], pos["last_timestamp"])
        rt._base = snapshot[head + size :]
        rt._vm = _VM.restored(rt._base, rt._limits)
        rt._booted = True
        return rt

    def boot(self, process_msg: Json, env: Json) -> Results:
        if self._booted:
            raise RuntimeError("process already booted")
        self._pos = _Position(str(process_msg.get("Id") or ""), shapes.body(process_msg), 0, 0)
        self._booted = True
        try:
            self._vm = _VM.fresh(self._sources, self._limits, self._names)
        except ModuleLoadError as exc:
            self._broken = str(exc)
            return Results(data="", error=self._broken)
        return self._step(process_msg, commit=True)

    def apply(self, msg: Json, env: Json) -> Results:
        if self._broken is not None:
            return Results(data="", error=self._broken)
        return self._step(msg, commit=True)

    def dryrun(self, msg: Json, env: Json) -> Results:
        """Runs on a replica restored from the live state's dump; the live VM is untouched."""
        if self._broken is not None:
            return Results(data="", error=self._broken)
        live = self._clean_vm()
        try:
            state = self._checkpoint(live)
        except NotSnapshottable:  # run on the live VM, rebuild it before the next use
            return self._step(msg, commit=False)
        replica = _VM.restored(state, self._limits)
        call = self._call(msg)
        out = replica.run(call)
        return _results(out, patch_split="patch-from" in call.base)

    def snapshot(self) -> bytes:
        """The live state's bytes; raises NotImplementedError when it cannot be written."""
        if self._broken is not None:
            raise NotImplementedError(f"no state to snapshot: {self._broken}")
        state = self._checkpoint(self._clean_vm())
        pos = self._pos
        head = json.dumps(
            {
                "pid": pos.pid,
                "process": pos.process,
                "next_slot": pos.next_slot,
                "last_timestamp": pos.last_timestamp,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        return _MAGIC + len(head).to_bytes(4, "big") + head + state

    def close(self) -> None:
        self._vm = None
        self._journal.clear()

    def _step(self, msg: Mapping[str, Any], *, commit: bool) -> Results:
        vm = self._clean_vm()
        call = self._call(msg)
        out = vm.run(call)
        if out.raised or not commit:
            self._dirty = True  # the live state moved; rebuild before the next use
        else:
            self._journal.append(call)
            self._dumped = None
            self._pos = _Position(
                self._pos.pid, self._pos.process, call.req["slot"] + 1, call.req["timestamp"]
            )
            if len(self._journal) >= self._checkpoint_every:
                with contextlib.suppress(NotSnapshottable):  # else: replay from the older base
                    self._checkpoint(vm)
        return _results(out, patch_split="patch-from" in call.base)

    def _checkpoint(self, vm: _VM) -> bytes:
        """The live state's dump; it becomes the base, so the journal restarts empty."""
        if self._dumped is None:
            self._dumped = vm.dump()
            self._base = self._dumped
            self._journal.clear()
        return self._dumped

    def _clean_vm(self) -> _VM:
        if self._vm is None:
            raise RuntimeError("process not booted (or closed)")
        if self._dirty:
            if self._base is None:
                vm = _VM.fresh(self._sources, self._limits, self._names)
            else:
                vm = _VM.restored(self._base, self._limits)
            for call in self._journal:
                if vm.run(call).raised:
                    raise RuntimeError("replay diverged: the runtime is not deterministic")
            self._vm, self._dirty = vm, False
        return self._vm

    def _call(self, msg: Mapping[str, Any]) -> _Call:
        pos = self._pos
        slot = _int(msg.get("Nonce"), pos.next_slot)
        ts = _int(msg.get("Timestamp"), pos.last_timestamp)
        base: Json = {k: v for k, v in pos.process.items() if k != "commitments"}
        base.update({"process": pos.process, "at-slot": slot - 1})
        req: Json = {
            "path": "compute",
            "data-protocol": "ao",
            "variant": "ao.N.1",
            "process": pos.pid,
            "slot": slot,
            "epoch": _int(msg.get("Epoch"), 0),
            "timestamp": ts,
            "block-height": _int(msg.get("Block-Height"), 0),
            "block-timestamp": ts // 1000,
            "body": shapes.body(msg),
        }
        if msg.get("Hash-Chain"):
            req["hash-chain"] = str(msg["Hash-Chain"])
        digest = hashlib.sha256(f"{pos.pid}\x00{slot}".encode()).digest()
        return _Call(base, req, int.from_bytes(digest[:8], "little", signed=True), ts // 1000)


def _int(value: Any, default: int) -> int:
    return default if value is None or value == "" else int(value)


def _results(out: _Outcome, *, patch_split: bool) -> Results:
    if out.raised:
        extra = {"lua_error": out.lua_error, "trace": out.trace}
        return Results(error=out.error or "compute failed", extra=extra)
    result = out.result
    results = result.get("results") if isinstance(result, dict) else None
    if not isinstance(results, dict):
        return Results(error=out.error, extra={"result": result})
    output = results.get("output")
    text = output.get("data") if isinstance(output, dict) else output
    outbox: list[Json] = []
    patches: list[Json] = []
    for msg in shapes.ordered(results.get("outbox")):
        if patch_split and shapes.is_patch(msg):
            patches.append(msg)
        else:
            outbox.append(shapes.aos_message(msg))
    data = shapes.text(text) if text is not None else ""
    prompt = output.get("prompt") if isinstance(output, dict) else None
    return Results(
        data=data if out.error is None else "",
        output=data,
        outbox=tuple(outbox),
        patches=tuple(patches),
        error=out.error,
        extra={"prompt": prompt, "results": results},
    )
