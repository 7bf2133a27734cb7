"""``wasi@1.0`` + ``json-iface@1.0`` + ``wasm-64@1.0`` on wasmtime: aos as WebAssembly.

One process is one wasmtime ``Store`` holding one instance of its image
(compiled once per node, see ``wasm_image``), with the host imports of
``wasm_imports``; calls across the boundary go through ``wasm_fastcall``.
Each message is ``handle(msg, env)`` (``json_iface``); a process whose
stack has no ``json-iface@1.0`` calls an exported function by name instead
(``Function`` tag, numeric ``Parameters`` as a JSON list: HyperBEAM's raw
``wasm-64@1.0`` calls, e.g. ``fac``), and reports the list of returned values.

Limits.  Fuel metering is the instruction budget: each message gets
``Limits.instructions × FUEL_PER_INSTRUCTION`` units of fuel (one unit is
about one WebAssembly instruction; the factor makes the Lua-VM budget of the
node's other runtimes comparable).  ``Limits.memory`` caps the linear memory
(store limits, and ``emscripten_resize_heap`` refuses past it).  A message that
runs out of fuel, hits the cap, or traps (``unreachable``, out of bounds,
``abort``) gets an ``Error`` result and leaves the state as it was before it.
An error that aos itself catches and reports (a Lua ``error()``) is aos's
result: the state keeps what the message did before it, as in the built-in
runtime.

Rollback, designed for the fast path: nothing is copied before a message.
The runtime keeps a *base* (the fresh image, or a snapshot) and the journal
of messages applied since; when a message fails, a fresh instance is restored
from the base and the journal replayed (deterministic imports make that
exact).  The base moves forward at every snapshot the worker takes (every 100
slots by default) and every ``checkpoint_every`` messages, so a rollback
replays at most that many.

Snapshots: ``AOWASM1`` ‖ length ‖ JSON header (image id, memory size, the
runs of 64 KiB chunks that are not all zero, the values of every mutable
global, exported by ``wasm_image``'s rewrite) ‖ those runs compressed with
zstd (level 3; deterministic: the same state gives the same bytes).  They
restore into a fresh instance of the same image, touching only those runs
(the format's code: ``wasm_snapshot``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import wasmtime

from aonode.process.runtime import json_iface, wasm_snapshot
from aonode.process.runtime.base import Json, Limits, Results
from aonode.process.runtime.wasm_image import GLOBAL_PREFIX, Image, engine
from aonode.process.runtime.wasm_imports import Host, HostTrap
from aonode.process.runtime.wasm_snapshot import split_snapshot

FUEL_PER_INSTRUCTION = 50
DEFAULT_LIMITS = Limits()


class WasmFailure(Exception):
    """A message stopped the instance (budget, memory cap, trap): it must be undone."""


@dataclass(frozen=True, slots=True)
class _Call:
    """One message as the instance takes it; kept in the journal to replay."""

    msg: bytes
    env: bytes
    now: int
    nonce: int | None = None  # the slot; aos expects them consecutive
    function: str | None = None  # raw mode: the export to call
    params: tuple[Any, ...] = ()


class _Instance:
    """One store, one instance, its host imports."""

    def __init__(self, image: Image, limits: Limits) -> None:
        self.image = image
        self.fuel = max(1, limits.instructions) * FUEL_PER_INSTRUCTION
        self.store = wasmtime.Store(engine())
        self.store.set_limits(memory_size=limits.memory)
        self.host = Host(self.store, image.memory64, limits.memory)
        # A start function runs inside instantiation: it gets the budget of one
        # message, and its trap or exhaustion is the image's failure, not the node's.
        self.store.set_fuel(self.fuel)
        try:
            instance = wasmtime.Instance(self.store, image.module, self.host.imports(image.module))
        except wasmtime.Trap as exc:
            if self.store.get_fuel() == 0:
                raise WasmFailure("the start function exceeded the instruction budget") from None
            raise WasmFailure(f"the start function failed: {_trap_text(exc)}") from None
        except wasmtime.WasmtimeError as exc:
            raise WasmFailure(f"the image cannot be instantiated: {exc}") from None
        exports = instance.exports(self.store)
        self.ex: dict[str, Any] = {e.name: exports[e.name] for e in image.module.exports}
        self.host.bind(self.ex)
        calls = self.host.calls
        self._fast = {
            name: calls.export(fn)
            for name in ("malloc", "free", "handle")
            if isinstance(fn := self.ex.get(name), wasmtime.Func)
        }
        self.memory: wasmtime.Memory = self.ex["memory"]
        self.globals = sorted(
            (name for name in self.ex if name.startswith(GLOBAL_PREFIX)),
            key=lambda n: int(n[len(GLOBAL_PREFIX) :]),
        )
        self.used = 0
        self.next_nonce: int | None = None  # slot after the last message applied

    def start(self) -> None:
        """Constructors, as emscripten's runtime runs them before anything else."""
        for name in ("_initialize", "__wasm_call_ctors"):
            if name in self.ex:
                self._guarded(lambda n=name: self.ex[n](self.store))
                break

    def _guarded(self, fn: Any) -> Any:
        self.store.set_fuel(self.fuel)
        self.host.refused_growth = False
        self.host.longjmp = False
        calls = self.host.calls
        calls.pending = None
        try:
            result = fn()
        except Exception as exc:  # traps, host traps, and (rarely) another thread's
            # exception: wasmtime-py keeps the last host exception in a global, so the
            # failure is classified from this instance's own state, never the exception
            # (a host function's own exception is kept per instance: through a call
            # that did not go through wasm_fastcall it is still pending here)
            pending, calls.pending = calls.pending, None
            exc = pending if isinstance(pending, Exception) else exc
            if self.store.get_fuel() == 0:
                raise WasmFailure("instruction budget exceeded") from None
            if self.host.refused_growth:
                raise WasmFailure("memory limit exceeded") from None
            raise WasmFailure(_trap_text(exc)) from None
        finally:
            self.used = self.fuel - self.store.get_fuel()
        if self.host.refused_growth:
            raise WasmFailure("memory limit exceeded")
        return result

    def call(self, call: _Call) -> tuple[bytes, bytes]:
        """(reply, stdout) of one message; WasmFailure when it must be undone."""
        self.host.now_ms = call.now
        self.host.stdout = bytearray()
        if call.function is not None:
            fn = self.ex.get(call.function)
            if not isinstance(fn, wasmtime.Func):
                raise WasmFailure(f"the image exports no function {call.function!r}")
            values = self._guarded(lambda: fn(self.store, *call.params))
            if not isinstance(values, list):
                values = [] if values is None else [values]
            self._applied(call)
            return orjson.dumps(values), bytes(self.host.stdout)

        def run() -> bytes:
            fast = self._fast
            if len(fast) < 3:
                raise HostTrap("the image exports no malloc, free and handle")
            malloc, free = fast["malloc"], fast["free"]
            pm = malloc(len(call.msg))
            pe = malloc(len(call.env))
            if not pm or not pe:
                raise HostTrap("malloc failed for the message")
            self.host.write(pm, call.msg)
            self.host.write(pe, call.env)
            reply = self.host.cstring(fast["handle"](pm, pe))
            free(pm)
            free(pe)
            return reply

        reply = self._guarded(run)
        self._applied(call)
        return reply, bytes(self.host.stdout)

    def _applied(self, call: _Call) -> None:
        if call.nonce is not None:
            self.next_nonce = call.nonce + 1

    # -- state -----------------------------------------------------------------------

    def dump(self) -> bytes:
        return wasm_snapshot.dump(
            self.memory,
            self.store,
            image=self.image.id,
            next_nonce=self.next_nonce,
            globals_={g: self.ex[g].value(self.store) for g in self.globals},
        )

    def restore(self, snapshot: bytes) -> None:
        header = wasm_snapshot.load(snapshot, self.memory, self.store)
        for name, value in header["globals"].items():
            self.ex[name].set_value(self.store, value)
        self.next_nonce = header.get("next-nonce")


def _trap_text(exc: BaseException) -> str:
    if isinstance(exc, wasmtime.Trap):
        first = exc.message.strip().splitlines()
        code = exc.trap_code
        return f"trap: {code.name.lower() if code else (first[0] if first else 'unknown')}"
    return f"trap: {exc}"


def _as_int(value: object, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return default


def _key_or_tag(msg: Json, name: str) -> Any:
    """A message's key, else its first tag of that name (any case): messages carry
    their tags in ``Tags`` only, a dry run may pass them as keys."""
    for key in (name.title(), name):
        if msg.get(key):
            return msg[key]
    for tag in msg.get("Tags") or ():
        if isinstance(tag, dict) and str(tag.get("name", "")).lower() == name:
            return tag.get("value")
    return None


def _params(raw: object) -> tuple[Any, ...]:
    if isinstance(raw, list | tuple):
        return tuple(raw)
    if isinstance(raw, str) and raw.strip():
        parsed = orjson.loads(raw)
        return tuple(parsed) if isinstance(parsed, list) else (parsed,)
    return ()


class WasmRuntime:
    """A :class:`~aonode.process.runtime.base.Runtime` running one process's WASM image."""

    def __init__(
        self,
        image: Image,
        *,
        limits: Limits = DEFAULT_LIMITS,
        json_iface: bool = True,
        snapshot: bytes | None = None,
        checkpoint_every: int = 1000,
        module: Json | None = None,
    ) -> None:
        self.image = image
        self._limits = limits
        self._json = json_iface
        self._module = module or {"Id": image.id, "Tags": []}
        self._base = snapshot
        self._journal: list[_Call] = []
        self._journal_bytes = 0
        self._checkpoint_every = max(1, checkpoint_every)
        self._dumped: bytes | None = snapshot
        self.last_fuel = 0
        self._env_seen: Json | None = None  # the env last encoded, and its bytes
        self._env_encoded = b""
        self._live: _Instance | None = self._rebuild()

    @classmethod
    def restore(cls, image: Image, snapshot: bytes, **kw: Any) -> WasmRuntime:
        header, _ = split_snapshot(snapshot)
        if header.get("image") != image.id:
            raise ValueError(f"snapshot of image {header.get('image')}, not {image.id}")
        return cls(image, snapshot=snapshot, **kw)

    # -- Runtime -----------------------------------------------------------------------

    def boot(self, process_msg: Json, env: Json) -> Results:
        return self.apply(process_msg, env)

    def apply(self, msg: Json, env: Json) -> Results:
        call = self._prepare(msg, env)
        if not self._json and call.function is None:
            return Results()  # a raw image: only messages naming a Function run
        inst = self._instance()
        try:
            reply, stdout = inst.call(call)
        except WasmFailure as exc:
            self.last_fuel = inst.used
            self._live = None
            self._live = self._rebuild()
            return Results(error=str(exc), extra={"rolled-back": True})
        self.last_fuel = inst.used
        self._journal.append(call)
        self._journal_bytes += len(call.msg) + len(call.env)
        self._dumped = None
        if len(self._journal) >= self._checkpoint_every or self._journal_bytes > 64 << 20:
            self._checkpoint()
        return self._results(reply, stdout, inst.used)

    def dryrun(self, msg: Json, env: Json) -> Results:
        if _as_int(msg.get("Nonce"), -1) < 0:  # no slot: aos would warn of a nonce gap
            nonce = self._instance().next_nonce
            msg = {k: v for k, v in msg.items() if k != "Nonce"}
            if nonce is not None:
                msg["Nonce"] = nonce
        call = self._prepare(msg, env)
        replica = _Instance(self.image, self._limits)
        replica.restore(self._checkpoint())
        try:
            reply, stdout = replica.call(call)
        except WasmFailure as exc:
            return Results(error=str(exc))
        return self._results(reply, stdout, replica.used)

    def snapshot(self) -> bytes:
        return self._checkpoint()

    def close(self) -> None:
        self._live = None
        self._journal.clear()

    # -- internals ---------------------------------------------------------------------

    def _instance(self) -> _Instance:
        if self._live is None:
            raise RuntimeError("the runtime is closed")
        return self._live

    def _checkpoint(self) -> bytes:
        """The live state's snapshot; it becomes the base, so the journal restarts empty."""
        if self._dumped is None:
            self._dumped = self._instance().dump()
            self._base = self._dumped
            self._journal.clear()
            self._journal_bytes = 0
        return self._dumped

    def _rebuild(self) -> _Instance:
        inst = _Instance(self.image, self._limits)
        if self._base is None:
            inst.start()
        else:
            inst.restore(self._base)
        for call in self._journal:
            try:
                inst.call(call)
            except WasmFailure as exc:
                raise RuntimeError(
                    f"replaying the journal failed ({exc}): not deterministic"
                ) from exc
        return inst

    def _prepare(self, msg: Json, env: Json) -> _Call:
        now = _as_int(msg.get("Timestamp"), 0)
        nonce = _as_int(msg.get("Nonce"), -1)
        if self._json:
            if not msg.get("Module"):  # aos needs it: the image is the process's module
                msg = {**msg, "Module": self.image.id}
            return _Call(
                json_iface.encode_message(msg),
                self._env_bytes(env),
                now,
                nonce if nonce >= 0 else None,
            )
        function = _key_or_tag(msg, "function")
        params = _params(_key_or_tag(msg, "parameters"))
        return _Call(
            b"", b"", now, nonce if nonce >= 0 else None, function and str(function), params
        )

    def _env_bytes(self, env: Json) -> bytes:
        """The encoded env: a worker passes the same dict with every message, so it is
        encoded once (a dict of its own is encoded again: it may differ)."""
        if env is not self._env_seen:
            self._env_seen, self._env_encoded = env, json_iface.encode_env(env, self._module)
        return self._env_encoded

    def _results(self, reply: bytes, stdout: bytes, used: int) -> Results:
        if not self._json:
            text = reply.decode() if reply != b"[]" else ""
            return Results(data=text or None, output=text, extra={"fuel": used})
        res = json_iface.decode(reply)
        printed = stdout.decode("utf-8", "replace")
        if printed:
            output = f"{printed}{res.output}" if res.output else printed
            res = Results(
                data=res.data,
                output=output,
                outbox=res.outbox,
                spawns=res.spawns,
                assignments=res.assignments,
                error=res.error,
                extra=res.extra,
            )
        return res
