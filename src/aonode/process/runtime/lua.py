"""``lua@5.3a``: one process's state in a sandboxed Lua 5.3 VM (lupa).

Each process gets its own ``lupa.lua53`` state split in two.  The *harness*
(``_HARNESS`` below) runs in the real globals and holds everything privileged:
the debug hook, the raw ``load``, the snapshot serializer, the JSON codec the
Python side talks through.  User code — the module (the built-in ``aos.lua`` by
default), Eval'd code, handlers — runs in a separate globals table, the
*sandbox*, that holds only safe copies: no ``io``, ``debug``, ``dofile``,
``loadfile``, file ``require``; ``os`` is ``time``/``clock``/``date``/
``difftime``; ``load`` takes text only; ``collectgarbage`` is a stub.  Only
strings and numbers cross between Python and Lua, so no Python object is ever
reachable from a process.

Determinism (invariant 7).  ``os.time()`` is the message's Timestamp (ms, as
aos), ``os.clock()`` is 0, ``os.date`` formats in UTC and defaults to that
time, ``math.random`` is a splitmix64 stream seeded at every message with
``sha256(process id ‖ slot as 8 signed big-endian bytes)``.  Lua 5.3 seeds its
string hashes from the wall clock and addresses, so ``pairs`` order differs
between two VMs fed the same messages: the sandbox's ``pairs`` walks numbers
ascending, then strings bytewise, then other keys; ``tostring`` names tables
and functions by a per-state counter instead of an address.  Still raw:
``next`` order and ``string.format('%s', tbl)``.  ``__gc`` metamethods are
refused (a finalizer would run user code at a time chosen by the collector).

Limits.  A count hook set from the harness adds to a per-message instruction
count (coroutines the sandbox creates get the hook too); past
``Limits.instructions`` it raises, and keeps raising, so a ``pcall`` loop
cannot outlive it (the sandbox's ``pcall``, ``xpcall``, ``coroutine.resume``
and ``coroutine.wrap`` re-raise a budget or memory failure).  ``Limits.memory``
caps the whole Lua state (lupa's allocator, so C allocations too) while a
message runs.  Time inside one C function is one VM instruction, so
``costed.lua`` wraps the string and table functions that can run long: each
charges the budget for the work its arguments ask of C (bytes, elements,
the worst case of a pattern), refuses a result past the memory cap before C
allocates it, and runs a pattern whose worst case is large in a Lua port of
the matcher that the hook counts.  All of that depends on the arguments
only, so it fails the same way on every node.  The last line is a backstop on
the process's CPU time (``cpu_backstop``), checked by the hook, for work no
argument shows (``..`` on long strings): node-local, so its failure says
``non-deterministic`` in ``Results.extra``.  Lua runs without the GIL on the
worker's compute threads, so other processes compute meanwhile.

Failures.  An ``error()`` in a handler is aos's business: aos reports it in
the result and keeps what the message changed before it.  A budget or memory
failure can stop anywhere, even inside the module, so the message is undone:
the runtime keeps a base (the module freshly loaded, or a snapshot) and the
journal of messages applied since, and rebuilds the state from them, which
determinism makes exact.  With the serializer present the base moves forward
every ``checkpoint_every`` messages, so a rebuild replays at most that many
(a state the serializer cannot write, one holding a coroutine, skips checkpoints).

Dry runs run on a replica, never on the live state: a state restored from a
snapshot of the live one, or (no serializer) the base plus the journal
replayed.  Correct by construction; costs a restore (or a replay) per dry run.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import orjson
from lupa import lua53  # type: ignore[import-untyped]

from aonode.process.runtime.base import Json, Limits, Results, json_default
from aonode.process.runtime.lualib import host_digest, library_code

DEFAULT_LIMITS = Limits()
_FATAL = ("budget", "memory", "timeout")
_HOOK_STEP = 1_000  # instructions between two calls of the budget hook (and the backstop)
# Process CPU seconds one message may take before the backstop ends it (see the
# module docstring: node-local, so such a failure is marked non-deterministic).
DEFAULT_CPU_BACKSTOP = 60.0


@cache
def _resource(name: str) -> bytes | None:
    path = resources.files("aonode.process.runtime") / name
    return path.read_bytes() if path.is_file() else None


def _no_attributes(obj: object, name: object, is_setting: bool) -> object:
    """lupa attribute filter: defence in depth, no Python object is ever handed to Lua."""
    raise AttributeError("Python objects are not accessible from a process")


def _as_int(value: object, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return default
    return default


def random_seed(process_id: str, slot: int) -> int:
    """The PRNG seed of one message: sha256(process id ‖ slot) as a signed 64-bit integer."""
    digest = hashlib.sha256(process_id.encode() + slot.to_bytes(8, "big", signed=True)).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class NotSnapshottable(NotImplementedError):
    """The state holds something the serializer cannot write (a coroutine, a C object)."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One message as the harness takes it; kept in the journal to replay."""

    msg: bytes  # JSON, without Data
    data: bytes | None  # Data passed as raw bytes: binary-safe, never JSON-decoded in Lua
    env: bytes
    slot: int
    seed: int
    now: int


class _VM:
    """One Lua state: harness, sandbox and module."""

    def __init__(self, limits: Limits, backstop: float = DEFAULT_CPU_BACKSTOP) -> None:
        self._limits = limits
        self._cap = limits.memory if limits.lua_memory is None else limits.lua_memory
        self._lua: Any = lua53.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_no_attributes,
            max_memory=0,  # 0 = no cap yet; set while user code runs
        )
        self._api: Any = self._lua.execute(
            _HARNESS, self._lua.execute(_COSTED_CODE), library_code, host_digest, _lazy_code
        )
        # no string the cap could not hold anyway: refused before C allocates it
        self._api[b"set_limits"](max(1, self._cap), backstop)
        self._serializer = _resource("lua_snapshot.lua")  # one copy, shared by every VM
        self.can_snapshot = self._serializer is not None

    def _guarded(self, fn: Any, *args: Any) -> tuple[str, str, str]:
        limit = max(1, self._limits.instructions)
        step = min(limit, _HOOK_STEP)
        self._lua.set_max_memory(self._cap, total=True)
        try:
            kind, payload, output = fn(*args, limit, step)
        except lua53.LuaMemoryError:
            return "memory", "memory limit exceeded", ""
        finally:
            self._lua.set_max_memory(0)
        return kind.decode(), payload.decode("utf-8", "replace"), output.decode("utf-8", "replace")

    def load_module(self, source: bytes, name: str, binary: bool = False) -> tuple[str, str]:
        """``binary``: ``source`` is bytecode the node compiled itself (never user input)."""
        kind, payload, _ = self._guarded(self._api[b"load_module"], source, name.encode(), binary)
        self._api[b"collect"]()  # loading leaves garbage the size of the module's code
        return kind, payload

    def has_process(self) -> bool:
        return bool(self._api[b"has_process"]())

    def run(self, call: _Call) -> tuple[str, str, str]:
        """(kind, payload, output); kind is "ok" (payload = results JSON) or the failure."""
        return self._guarded(self._api[b"run"], call.msg, call.data, call.env, call.seed, call.now)

    def dump(self) -> bytes:
        try:
            state: bytes = self._api[b"dump"](self._serializer)
        except lua53.LuaError as exc:  # e.g. a coroutine in the state: not serialisable
            raise NotSnapshottable(str(exc)) from None
        return state

    def restore(self, state: bytes) -> None:
        self._api[b"restore"](self._serializer, state)

    def close(self) -> None:
        self._api = None
        self._lua = None


def _results(kind: str, payload: str, output: str) -> Results:
    if kind != "ok":
        extra = {"rolled-back": kind in _FATAL}
        if kind == "timeout":  # another node may have computed it: say so
            extra["non-deterministic"] = True
        return Results(output=output, error=payload, extra=extra)
    raw = payload.encode()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # user bytes that are not UTF-8: keep what can be kept
        doc = json.loads(raw.decode("utf-8", "replace"))
    return Results(
        data=doc.get("data"),
        output=doc.get("output") or "",
        outbox=tuple(doc.get("outbox") or ()),
        spawns=tuple(doc.get("spawns") or ()),
        assignments=tuple(doc.get("assignments") or ()),
        error=doc.get("error"),
    )


class LuaRuntime:
    """A :class:`~aonode.process.runtime.base.Runtime` running one process on Lua 5.3.

    ``module_sources``: the Lua sources of the process's module, run in order in
    the sandbox; the last one that returns a table with ``handle`` (or a
    function) is the entry point, called as ``handle(msg, env)`` and answering
    aos-style ``{Data?, Output?, Messages, Spawns, Assignments, Error?}``.
    ``None`` is the node's built-in aos module.  ``snapshot`` resumes from a
    state :meth:`snapshot` returned instead (the module comes with it).
    """

    def __init__(
        self,
        module_sources: Sequence[str] | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        checkpoint_every: int = 1000,
        snapshot: bytes | None = None,
        cpu_backstop: float = DEFAULT_CPU_BACKSTOP,
    ) -> None:
        if module_sources is None:
            builtin = _resource("aos.lua")
            assert builtin is not None, "aos.lua is missing from the package"
            self._sources: list[tuple[str, bytes]] = [("aos.lua", builtin)]
            self._builtin = True
        else:
            self._sources = [(f"module-{i}", s.encode()) for i, s in enumerate(module_sources)]
            self._builtin = False
        self._limits = limits
        self._backstop = cpu_backstop
        self._checkpoint_every = max(1, checkpoint_every)
        # the state the journal starts from (None: the module, fresh), zlib-compressed:
        # it is read only to rebuild after a failure, and held by every live process
        self._base = None if snapshot is None else zlib.compress(snapshot, 1)
        self._journal: list[_Call] = []
        self._next_slot = 0
        self._dumped: bytes | None = None  # dump of the live state, until it changes
        self._next_checkpoint = self._checkpoint_every  # journal length that triggers one
        self._broken: str | None = None
        self._last_env: Json | None = None
        self._last_env_bytes = b""
        self._vm: _VM | None = self._rebuild()

    @classmethod
    def restore(cls, snapshot: bytes, *, limits: Limits = DEFAULT_LIMITS) -> LuaRuntime:
        """A runtime resumed from :meth:`snapshot`'s bytes."""
        return cls(None, limits=limits, snapshot=snapshot)

    # -- Runtime ----------------------------------------------------------------

    def boot(self, process_msg: Json, env: Json) -> Results:
        """The process message is the module's first message: it sets Owner, Name, ao.id, ..."""
        return self.apply(process_msg, env)

    def apply(self, msg: Json, env: Json) -> Results:
        if self._broken is not None:
            return Results(error=self._broken)
        call = self._prepare(msg, env)
        vm = self._live()
        kind, payload, output = vm.run(call)
        if kind in _FATAL:  # may have stopped half-way: rebuild the state before it
            vm.close()
            self._vm = None
            self._vm = self._rebuild()
            return _results(kind, payload, output)
        self._journal.append(call)
        self._next_slot = call.slot + 1
        self._dumped = None
        if vm.can_snapshot and len(self._journal) >= self._next_checkpoint:
            try:
                self._checkpoint(vm)
            except NotSnapshottable:  # replay from the older base; try again later
                self._next_checkpoint = len(self._journal) + self._checkpoint_every
        return _results(kind, payload, output)

    def dryrun(self, msg: Json, env: Json) -> Results:
        if self._broken is not None:
            return Results(error=self._broken)
        call = self._prepare(msg, env)
        live = self._live()
        try:
            state = self._checkpoint(live)
        except NotImplementedError:  # no serializer, or a state it cannot write
            replica = self._rebuild()
        else:
            replica = _VM(self._limits, self._backstop)
            replica.restore(state)
        try:
            return _results(*replica.run(call))
        finally:
            replica.close()

    def snapshot(self) -> bytes:
        """The live state's bytes; raises NotImplementedError when it cannot be written."""
        return self._checkpoint(self._live())

    def close(self) -> None:
        if self._vm is not None:
            self._vm.close()
            self._vm = None

    # -- internals ----------------------------------------------------------------

    def _live(self) -> _VM:
        if self._vm is None:
            raise RuntimeError("the runtime is closed")
        return self._vm

    def _checkpoint(self, vm: _VM) -> bytes:
        """The live state's dump; it becomes the base, so the journal restarts empty."""
        if not vm.can_snapshot:
            raise NotImplementedError("lua_snapshot.lua is not installed: no snapshots")
        if self._dumped is None:
            self._dumped = vm.dump()
            self._base = zlib.compress(self._dumped, 1)
            self._journal.clear()
            self._next_checkpoint = self._checkpoint_every
        return self._dumped

    def _rebuild(self) -> _VM:
        """A VM holding the base with the journal replayed on it."""
        vm = _VM(self._limits, self._backstop)
        if self._base is not None:
            if not vm.can_snapshot:
                raise NotImplementedError(
                    "lua_snapshot.lua is not installed: cannot restore a snapshot"
                )
            vm.restore(zlib.decompress(self._base))
        else:
            for name, source in self._sources:
                binary = self._builtin and name == "aos.lua"
                kind, payload = vm.load_module(_builtin_code() if binary else source, name, binary)
                if kind != "ok":
                    self._broken = f"the module failed to load ({name}): {payload}"
                    return vm
            if not vm.has_process():
                self._broken = "the module returns no handle(msg, env)"
                return vm
        for call in self._journal:
            kind, payload, _ = vm.run(call)
            if kind in _FATAL:
                raise RuntimeError(
                    f"replaying slot {call.slot} failed ({payload}): not deterministic"
                )
        return vm

    def _env_json(self, env: Json) -> bytes:
        """``env`` as JSON; a worker passes the same env object every time: encoded once."""
        if env is not self._last_env:
            # a copy: orjson's bytes keep its ~4 KiB buffer, held as long as the runtime
            encoded = orjson.dumps(env, default=json_default)
            self._last_env, self._last_env_bytes = env, bytes(memoryview(encoded))
        return self._last_env_bytes

    def _prepare(self, msg: Json, env: Json) -> _Call:
        data = msg.get("Data")
        if isinstance(data, str):
            raw: bytes | None = data.encode()
        elif isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
        else:
            raw = None if data is None else str(data).encode()
        body = {k: v for k, v in msg.items() if k != "Data"}
        process = env.get("Process")
        pid = str(process.get("Id", "")) if isinstance(process, dict) else ""
        slot = _as_int(msg.get("Nonce"), self._next_slot)
        return _Call(
            # a copy: orjson's bytes keep its ~4 KiB buffer, and the journal holds them
            msg=bytes(memoryview(orjson.dumps(body, default=json_default))),
            data=raw,
            env=self._env_json(env),
            slot=slot,
            seed=random_seed(pid, slot),
            now=_as_int(msg.get("Timestamp"), 0),
        )


def _harness(name: str) -> bytes:
    source = _resource(name)
    if source is None:  # pragma: no cover - a broken installation
        raise RuntimeError(f"aonode's {name} is missing from the package")
    return source


@cache
def _builtin_code() -> bytes:
    """aos.lua compiled once per node process, debug info kept (its error lines
    are the user's to read): each process loads it without running the parser,
    whose working memory would otherwise stay in the process's heap."""
    source = _resource("aos.lua")
    assert source is not None, "aos.lua is missing from the package"
    return _compiled(source, "aos.lua", strip=False)


@cache
def _lazy_code() -> bytes:
    """aos_lazy.lua (the built-in's rarely used half) compiled once per node process,
    debug info kept like aos.lua's and under its name (error texts say ``aos.lua:N:``
    as when these functions were in it); a process's VM loads it on aos's first
    call of one of its functions."""
    source = _resource("aos_lazy.lua")
    assert source is not None, "aos_lazy.lua is missing from the package"
    return _compiled(source, "aos.lua", strip=False)


def _stripped(source: bytes, name: str) -> bytes:
    """The harness compiled once, without debug info, for every VM to load as is.

    Its copy of the code is then about a third smaller in each VM (no line or
    local-name tables): ~32 KiB less per live process.  Only the privileged
    harness is stripped: its errors carry no line of their own (they name the
    caller's); user code and the module keep theirs."""
    return _compiled(source, name, strip=True)


def _compiled(source: bytes, name: str, *, strip: bool) -> bytes:
    compiler = lua53.LuaRuntime(encoding=None, register_eval=False)
    dump = compiler.eval("function(s, n, k) return string.dump(assert(load(s, n, 't')), k) end")
    code: bytes = dump(source, f"={name}".encode(), strip)
    return code


_HARNESS_SOURCE = _harness("sandbox.lua")
_COSTED = _harness("costed.lua")  # the source: tests load it on its own
_HARNESS = _stripped(_HARNESS_SOURCE, "sandbox.lua")
_COSTED_CODE = _stripped(_COSTED, "costed.lua")
