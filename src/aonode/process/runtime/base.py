"""The contract between the process device and an execution runtime.

A runtime holds one process's live state and applies assignments to it one at
a time.  Messages reach it in the aos / json-iface shape that AO's compute
units build (the same shape the WASM stack will use), so the device does not
care which runtime it drives:

``msg``::

    {"Id", "Owner", "From", "Target", "Anchor", "Data": str,
     "Tags": [{"name", "value"}], "Timestamp": int (ms), "Block-Height": int,
     "Epoch": int, "Nonce": int (= slot), "Hash-Chain": str, "Cron": False,
     "Module": str | None}  (tags in "Tags" only, as the legacy CU hands
     them: aos lifts them to keys itself; a dry run may also pass them as keys)

``env``::

    {"Process": {"Id", "Owner", "Tags": [...], "Module": str | None,
                 plus the process's tags as keys}}

Determinism is the runtime's duty: nothing may read the wall clock or an
unseeded random source; ``os.time()`` is ``msg.Timestamp`` and ``math.random``
is seeded from the process id and the slot.  Failures of one message (an
error raised by user code, the instruction budget, the memory cap) are
reported in ``Results.error`` and leave the process usable; the state after
such a message is the state before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Json = dict[str, Any]


# An aos message's own fields, as AO's compute units hand them to a process (the
# json-iface message keeps only these; a tag may not overwrite one of them).
MESSAGE_FIELDS = (
    "Id",
    "Owner",
    "From",
    "Target",
    "Anchor",
    "Data",
    "Tags",
    "Timestamp",
    "Block-Height",
    "Epoch",
    "Nonce",
    "Hash-Chain",
    "Cron",
    "Module",
)


def json_default(value: object) -> Any:
    """orjson ``default``: bytes become text (invalid UTF-8 replaced); nothing else."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-message budget: Lua VM instructions and bytes of memory.

    ``memory`` caps a WASM instance's linear memory (aos WASM needs ~68 MiB);
    ``lua_memory``, when set, caps a built-in-aos Lua state instead (a much
    smaller heap, so the node can hold a tighter line there)."""

    instructions: int = 200_000_000
    memory: int = 256 * 1024 * 1024
    lua_memory: int | None = None


@dataclass(frozen=True, slots=True)
class Results:
    """What one message produced.

    ``outbox`` entries are aos messages: ``{"Target", "Data", "Tags": [...],
    "Anchor"?}`` plus each tag as a key; ``spawns`` and ``assignments`` as aos
    returns them.  ``data`` is the returned value as a string (Eval's return,
    ``nil`` → ``""`` as in aos); ``output`` is what ``print`` wrote.
    """

    data: str | None = ""  # "" when nothing was returned, as aos's Output.data
    output: str = ""
    outbox: tuple[Json, ...] = ()
    spawns: tuple[Json, ...] = ()
    assignments: tuple[Json, ...] = ()
    patches: tuple[Json, ...] = ()
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> Json:
        doc: Json = {
            "data": self.data,
            "output": self.output,
            "outbox": list(self.outbox),
            "spawns": list(self.spawns),
            "assignments": list(self.assignments),
            "patches": list(self.patches),
        }
        if self.error is not None:
            doc["error"] = self.error
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Results:
        return cls(
            data=doc.get("data"),
            output=doc.get("output", ""),
            outbox=tuple(doc.get("outbox", ())),
            spawns=tuple(doc.get("spawns", ())),
            assignments=tuple(doc.get("assignments", ())),
            patches=tuple(doc.get("patches", ())),
            error=doc.get("error"),
        )


class Runtime(Protocol):
    """One process's live execution state (not thread-safe: one worker owns it)."""

    def boot(self, process_msg: Json, env: Json) -> Results:
        """Initialise from the process message itself (slot 0)."""
        ...

    def apply(self, msg: Json, env: Json) -> Results:
        """Apply one assignment's message; the state advances (unless it failed)."""
        ...

    def dryrun(self, msg: Json, env: Json) -> Results:
        """Evaluate ``msg`` against the current state and change nothing."""
        ...

    def snapshot(self) -> bytes:
        """A deterministic serialisation of the whole state (same state → same bytes)."""
        ...

    def close(self) -> None: ...
