"""Execution devices: the registry from a device name to its spawn check and runtime.

A process names how it is computed with ``execution-device`` (one device, or
``stack@1.0`` whose ``execution-stack`` lists several).  Exactly one
registered device must run it; the rest of the stack must be devices that one
accepts beside it (its ``stack``, e.g. ``wasi@1.0`` beside ``wasm-64@1.0``) or
a modifier any device accepts (``patch@1.0``, which the worker applies).
Anything else is refused at spawn.  A process naming no execution device may
still be claimed by a device from its first module's content (a legacy-network
process whose ``Module`` is a WASM binary); otherwise it is a schedule only.

Each node's :class:`~aonode.process.device.ProcessDevice` holds its own
registry, built-ins pre-registered, so registering a device never leaks from
one node (or test) into another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from aonode.errors import InvalidMessage
from aonode.message import Message
from aonode.process.modules import ModuleSource
from aonode.process.runtime.base import Limits
from aonode.process.worker import RuntimeFactory

T = TypeVar("T")

PATCH = "patch@1.0"
MODIFIERS = frozenset({PATCH})  # stack members every device accepts; the worker applies them


def execution_devices(process: Message) -> list[str]:
    """The execution devices a process names, stack members expanded."""
    device = process.keys.get("execution-device", "")
    if not device:
        return []
    if device.lower() == "stack@1.0":
        stack = process.keys.get("execution-stack", "")
        return [d.strip().strip('"') for d in stack.split(",") if d.strip()]
    return [device]


def named(process: Message) -> set[str]:
    """The execution devices a process names, lower-cased (device names are case-blind)."""
    return {d.lower() for d in execution_devices(process)}


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What a device uses to check a process and make its runtime: this node's
    modules (store, then gateway), its limits, and its compute threads."""

    modules: ModuleSource
    limits: Limits
    executor: Executor

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` on a compute thread (loading a module, compiling an image)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


# (process, context) → a factory of the process's runtime (fresh, or from a snapshot)
RuntimeMaker = Callable[[Message, DeviceContext], Awaitable[RuntimeFactory]]
# (process, context) → None, or a 4xx (InvalidMessage/BadParameter) naming what cannot run
SpawnCheck = Callable[[Message, DeviceContext], Awaitable[None]]
# (first module's data, its Content-Type) → whether the device runs a process naming no device
ModuleClaim = Callable[[bytes, str], bool]


async def accept_any(process: Message, context: DeviceContext) -> None:
    """The spawn check of a device that can run whatever names it."""


@dataclass(frozen=True, slots=True)
class ExecutionDevice:
    """One execution device: how a process naming ``name`` is vetted and run."""

    name: str  # as processes name it, lower case: "lua@5.3a"
    runtime: RuntimeMaker  # loads what the runtime needs (4xx when it cannot), per worker
    check: SpawnCheck = accept_any  # at spawn: a 4xx now rather than at every message
    stack: frozenset[str] = frozenset()  # devices it accepts beside it in a stack@1.0
    claims: ModuleClaim | None = None  # takes processes that name no execution device
    summary: str = ""  # how to name it, for the refusal of an unsupported device
    # Its state is large to snapshot (a WASM memory: tens of MiB scanned, hundreds of
    # KiB stored, 10-25 ms a dump): snapshotted every ``heavy_snapshot_slots`` slots.
    heavy_state: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.lower())
        object.__setattr__(self, "stack", frozenset(d.lower() for d in self.stack))


def unsupported(what: Iterable[str], supported: str) -> InvalidMessage:
    return InvalidMessage(
        f"execution device(s) {', '.join(what)} cannot run on this node; supported: {supported}",
        code="unsupported-execution-device",
    )


class DeviceRegistry:
    """Device name → :class:`ExecutionDevice`, in registration order (one per node)."""

    def __init__(self, devices: Iterable[ExecutionDevice] = ()) -> None:
        self._devices: dict[str, ExecutionDevice] = {}
        for device in devices:
            self.register(device)

    def register(self, device: ExecutionDevice) -> None:
        """Add ``device``; a name already taken (or a modifier's) is a programming error."""
        if device.name in self._devices or device.name in MODIFIERS:
            raise ValueError(f"execution device {device.name} is already registered")
        self._devices[device.name] = device

    def names(self) -> list[str]:
        return list(self._devices)

    def supported(self) -> str:
        """The devices this node runs, as the refusal of an unsupported one lists them."""
        parts = [d.summary or d.name for d in self._devices.values()]
        return ", ".join(parts) + f" (any in a stack@1.0 with {', '.join(sorted(MODIFIERS))})"

    def select(self, process: Message) -> ExecutionDevice | None:
        """The device that runs ``process``: None when it names none; InvalidMessage
        (``unsupported-execution-device``) when no registered device runs what it names."""
        devices = execution_devices(process)
        if not devices:
            return None
        lowered = [d.lower() for d in devices]
        for name in dict.fromkeys(lowered):
            device = self._devices.get(name)
            if device is not None and all(
                d == name or d in device.stack or d in MODIFIERS for d in lowered
            ):
                return device
        known = set(self._devices) | MODIFIERS
        for device in self._devices.values():
            known |= device.stack
        others = [d for d in devices if d.lower() not in known]
        raise unsupported(others or devices, self.supported())

    def claiming(self, data: bytes, content_type: str) -> ExecutionDevice | None:
        """The device that runs a process naming no device whose first module is this."""
        for device in self._devices.values():
            if device.claims is not None and device.claims(data, content_type):
                return device
        return None
