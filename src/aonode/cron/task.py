"""Cron tasks as values: interval parsing, the stored task, what a firing sends.

See :mod:`aonode.cron` for the timer loop, the durability rules and who may
create and stop tasks.  What a firing may carry is decided here: caller-given
identity keys (:data:`IDENTITY_KEYS`) are refused when the task is created,
because a firing is signed by the node's wallet and processes trust the node
as their ``Authority``; a firing names its task and owner in ``Cron-Task`` and
``Cron-Owner``, keys aos never reads as the sender.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, urlsplit

import orjson

from aonode.codec import ans104
from aonode.codec.b64 import b64url_decode, b64url_encode
from aonode.errors import BadParameter
from aonode.wallet import Wallet

KIND = "cron"
USED = "cron-used"  # ids of the tasks signed requests made, kept: a replay is refused
# (method, target, headers, body) → (status, body): the node's own routes, in process
Dispatch = Callable[[str, str, list[tuple[str, str]], bytes], Awaitable[tuple[int, bytes]]]
TaskType = Literal["once", "every"]

UNITS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
FORMS = (
    "N-milliseconds, N-seconds, N-minutes, N-hours or N-days "
    "(singular allowed, e.g. 1-second; N a whole number)"
)
RESERVED = ("cron-path", "interval", "delay")
# keys that say who sent a message (aos maps From-Process to msg.From when the
# signer is an Authority) or where it came from: never taken from a caller
IDENTITY_KEYS = frozenset(
    {
        "from-process",
        "from",
        "owner",
        "pushed-from",
        "pushed-for",
        "from-slot",
        "from-module",
        "outbox-index",
        "forwarded-by",
        "forwarded-for",
        "cron-task",
        "cron-owner",
    }
)
OPERATOR = "operator"  # the owner named by tasks the operator created
MAX_DURATION_MS = 366 * UNITS["day"]  # longest interval or delay
MAX_KEYS = 100
MAX_KEY_NAME = 128
_DURATION = re.compile(r"^\s*([+-]?\d{1,18})-([A-Za-z]+)\s*$")
_KEY_NAME = re.compile(r"^[!-~]+$")  # printable ASCII, no spaces
_ANY_ID = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


def parse_duration(text: str, *, name: str = "interval", allow_zero: bool = False) -> int:
    """``"5-seconds"`` → 5000 (milliseconds); a 400 naming the accepted forms otherwise."""
    m = _DURATION.match(text)
    unit = m.group(2).lower() if m else ""
    unit = unit[:-1] if unit.endswith("s") else unit
    if m is None or unit not in UNITS:
        raise BadParameter(
            f"{name} {text!r} is not a duration; accepted: {FORMS}", code="bad-" + name
        )
    amount = int(m.group(1))
    if amount < 0 or (amount == 0 and not allow_zero):
        least = "zero or more" if allow_zero else "positive"
        raise BadParameter(
            f"{name} {text!r} must be {least}; accepted: {FORMS}", code="bad-" + name
        )
    ms = amount * UNITS[unit]
    if ms > MAX_DURATION_MS:
        raise BadParameter(f"{name} {text!r} is longer than 366 days", code="bad-" + name)
    return ms


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def next_due(due: int, now: int, interval: int) -> int:
    """The first tick ``due + k*interval`` (k >= 1) after ``now``: missed ticks coalesce."""
    return due + max(1, (now - due) // interval + 1) * interval


@dataclass(frozen=True, slots=True)
class CronTask:
    """A task as stored (JSON) and listed."""

    id: str
    type: TaskType
    path: str
    keys: tuple[tuple[str, str], ...]
    next_run: int | None  # epoch ms; None once a once-task has fired
    interval: str | None = None
    interval_ms: int | None = None
    runs: int = 0
    created: int = 0
    owner: str | None = None  # the signer's address, or OPERATOR; None: made before owners

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": 2,
                "id": self.id,
                "type": self.type,
                "path": self.path,
                "keys": [list(kv) for kv in self.keys],
                "next-run": self.next_run,
                "interval": self.interval,
                "interval-ms": self.interval_ms,
                "runs": self.runs,
                "created": self.created,
                "owner": self.owner,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CronTask:
        d = orjson.loads(raw)
        kind: TaskType = "every" if d["type"] == "every" else "once"
        return cls(
            id=str(d["id"]),
            type=kind,
            path=str(d["path"]),
            keys=tuple((str(k), str(v)) for k, v in d["keys"]),
            next_run=None if d["next-run"] is None else int(d["next-run"]),
            interval=d.get("interval"),
            interval_ms=d.get("interval-ms"),
            runs=int(d.get("runs", 0)),
            created=int(d.get("created", 0)),
            owner=None if d.get("owner") is None else str(d["owner"]),
        )


@dataclass(frozen=True, slots=True)
class RunStatus:
    """How the last firing of a task went (memory only)."""

    at: int
    status: int | None  # the HTTP status the route answered; None: it raised
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the signer of the request (``address``) and/or the operator."""

    address: str | None = None
    operator: bool = False
    message_id: str | None = None  # the signed request's id: its task's id derives from it

    @property
    def owner(self) -> str | None:
        """The owner a task made by this caller gets (the operator wins)."""
        return OPERATOR if self.operator else self.address


def signed_task_id(type_: TaskType, message_id: str) -> str:
    """The id of the task a signed request makes: replaying the request finds it."""
    seed = f"aonode-cron-task/{type_}/{message_id}".encode()
    return b64url_encode(hashlib.sha256(seed).digest())


def check_key(name: str) -> str:
    """The lowercase key of ``name``; 400 for an identity key or a malformed name."""
    if len(name) > MAX_KEY_NAME or not _KEY_NAME.match(name):
        raise BadParameter(
            f"key {name[:64]!r} is not a printable name of 1..{MAX_KEY_NAME} characters",
            code="bad-key",
        )
    low = name.lower()
    if low in IDENTITY_KEYS or low.replace("_", "-") in IDENTITY_KEYS:
        raise BadParameter(
            f"key {name!r} says who sent the message; a firing is signed by the node, "
            "which never takes a sender from the caller (it names the task's owner "
            "in Cron-Owner itself)",
            code="identity-key",
        )
    return low


def new_task(
    type_: TaskType,
    params: Iterable[tuple[str, str]],
    *,
    now: int,
    owner: str | None = None,
    min_interval_ms: int = 1,
    task_id: str | None = None,
) -> CronTask:
    """A task from request parameters (reserved keys, case-insensitive; the rest are keys)."""
    reserved: dict[str, str] = {}
    keys: dict[str, tuple[str, str]] = {}
    for name, value in params:
        low = check_key(name)
        if low == "type" and value.strip().lower() != "message":
            raise BadParameter(
                f"a firing sends Type: Message, not {value!r}", code="bad-message-type"
            )
        if low in RESERVED:
            reserved[low] = value
        else:
            keys[low] = (name, value)  # a later value wins (the query over the body)
    if len(keys) > MAX_KEYS:
        raise BadParameter(f"at most {MAX_KEYS} message keys", code="too-many-keys")
    path = reserved.get("cron-path", "").strip()
    if not path:
        raise BadParameter("cron-path is required: the path to request", code="missing-cron-path")
    if not path.startswith("/"):
        path = "/" + path
    if "~cron@1.0" in urlsplit(path).path:
        raise BadParameter("a cron-path may not point at ~cron@1.0 itself", code="bad-cron-path")
    interval, interval_ms = None, None
    if type_ == "every":
        interval = reserved.get("interval")
        if interval is None:
            raise BadParameter(f"interval is required; accepted: {FORMS}", code="bad-interval")
        interval_ms = parse_duration(interval)
        if interval_ms < min_interval_ms:
            raise BadParameter(
                f"interval {interval!r} is shorter than this node's minimum, {min_interval_ms} ms",
                code="interval-too-short",
            )
    delay = reserved.get("delay")
    delay_ms = parse_duration(delay, name="delay", allow_zero=True) if delay else 0
    task = CronTask(
        id=task_id or b64url_encode(os.urandom(32)),
        type=type_,
        path=path,
        keys=tuple(keys.values()),
        next_run=now + delay_ms,
        interval=interval,
        interval_ms=interval_ms,
        created=now,
        owner=owner,
    )
    if task.keys:
        message_target(task)  # refuse a bad target now, not at every firing
    return task


def message_target(task: CronTask) -> bytes:
    """The target of a firing's message: ``target`` key, else the path's process id or query."""
    given = next((v for k, v in task.keys if k.lower() == "target"), None)
    if given is None:
        split = urlsplit(task.path)
        head = split.path.strip("/").split("/", 1)[0].partition("~")[0]
        query = {k.lower(): v for k, v in parse_qsl(split.query)}
        given = head if _ID.match(head) else query.get("target", "")
    if given == "":
        return b""
    try:
        raw = b64url_decode(given)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadParameter(f"target {given!r} is not a 43-character id", code="bad-target")
    return raw


def reached_processes(task: CronTask) -> set[str]:
    """Every id a POST firing of ``task`` could deliver to: its message's target and
    every 43-character id in its path and query (a process's owner must own them all)."""
    found = set(_ANY_ID.findall(task.path))
    target = message_target(task)
    if target:
        found.add(b64url_encode(target))
    return found


def firing_request(task: CronTask, wallet: Wallet) -> tuple[str, list[tuple[str, str]], bytes]:
    """(method, headers, body) of one firing (see the module docstring).

    The node signs only a task whose owner is known and whose keys name no
    sender (checked again here: a record may predate the rule)."""
    if not task.keys:
        return "GET", [], b""
    if task.owner is None:
        raise BadParameter("a task with no known owner sends no signed message")
    for name, _ in task.keys:
        check_key(name)
    base = {"data-protocol": ("Data-Protocol", "ao"), "variant": ("Variant", "ao.N.1")}
    base["type"] = ("Type", "Message")
    tags: list[tuple[str, str]] = []
    data = b""
    for name, value in task.keys:
        low = name.lower()
        if low == "data":
            data = value.encode()
        elif low not in ("target", "anchor"):
            base.pop(low, None)
            tags.append((name, value))
    item = ans104.sign(
        wallet,
        data=data,
        tags=[*base.values(), *tags, ("Cron-Task", task.id), ("Cron-Owner", task.owner)],
        target=message_target(task),
        anchor=os.urandom(32),
    )
    return "POST", [("content-type", "application/ans104")], item.raw
