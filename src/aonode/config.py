"""Node configuration: one typed, frozen value passed explicitly everywhere.

Sources, lowest precedence first: defaults, environment (``AONODE_<NAME>``),
command-line flags.  Nothing in the node reads configuration from globals.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from aonode.errors import ConfigError
from aonode.quotas import Rate, parse_rate


class Mode(StrEnum):
    """When a client is told that its message is scheduled."""

    AGGRESSIVE = "aggressive"
    LOCAL_CONFIRMATION = "local_confirmation"
    REMOTE_CONFIRMATION = "remote_confirmation"


DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_LUA_MEMORY = 64 * 1024 * 1024  # per live Lua process (lua@5.3a on the built-in aos)
# Quotas (README "Running a public node" says why each default): a person using aos or
# aoconnect never meets them, a flood does.  Per signer unless said otherwise.
DEFAULT_QUOTA_MESSAGES = Rate(500, 20.0)  # a burst of 500, then 20/s
DEFAULT_QUOTA_SPAWNS = Rate(50, 6 / 60)  # a burst of 50, then 6/min
DEFAULT_QUOTA_STORE = Rate(1024**3, 1024**3 / 86400)  # 1 GiB, then 1 GiB/day
DEFAULT_QUOTA_READS = Rate(2000, 200.0)  # per client address: unsigned reads and dry runs


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to start; see ``aonode serve --help``."""

    host: str = "127.0.0.1"
    port: int = 8734
    data_dir: Path = Path(".aonode")
    wallets: tuple[Path, ...] = ()
    mode: Mode = Mode.LOCAL_CONFIRMATION
    max_body: int = DEFAULT_MAX_BODY
    store: str | None = None
    gateway: str | None = None
    advertise_url: str | None = None
    abort_seconds: float = 10.0
    queue_size: int = 1024
    sign_threads: int = 2
    page_limit: int = 1000
    snapshot_slots: int = 100
    snapshot_seconds: float = 60.0
    worker_max_idle: float = 300.0
    # process_async_cache: computed results and snapshots are written in the
    # background (a compute answers before its cache row is durable; a crash
    # only costs recomputation).  Off: each compute waits for its writes.
    async_cache: bool = True
    push_max_depth: int = 32
    push_max_messages: int = 1000
    # push to other nodes: process id or scheduler address → that node's base URL
    # (its URLs are also the nodes asked for process definitions and locations)
    scheduler_map: Mapping[str, str] = field(default_factory=dict)
    push_retry_seconds: float = 30.0  # longest wait before an async push walks again
    # where assignments (and their messages) are uploaded: an Arweave node or arlocal
    # (scheduler/upload.py); required by remote_confirmation, background otherwise
    upload_url: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # the memory cap of one Lua process's state, C allocations included; a message
    # that needs more fails (rolled back) and the process goes on
    lua_memory: int = DEFAULT_LUA_MEMORY
    # cron (cron.py): the operator's bearer token (None: no operator), the task caps
    # and the shortest ``every`` interval; defaults a normal user never meets
    operator_token: str | None = field(default=None, repr=False)
    cron_max_per_owner: int = 100
    cron_max_tasks: int = 10_000
    cron_min_interval_ms: int = 10_000
    # -- quotas and connection limits (aonode.quotas, http/server.py); a Rate of
    # OFF (``off``) lifts a quota: for tests and benches that flood on purpose
    quota_messages: Rate = DEFAULT_QUOTA_MESSAGES
    quota_spawns: Rate = DEFAULT_QUOTA_SPAWNS
    quota_store_bytes: Rate = DEFAULT_QUOTA_STORE
    quota_reads: Rate = DEFAULT_QUOTA_READS
    dryruns_per_client: int = 4  # concurrent dry runs per client address (0: no cap)
    dryruns_total: int = 32  # concurrent dry runs on the node (0: no cap)
    quota_keys: int = 100_000  # signers/clients remembered (LRU); bounds the table
    max_header: int = 16 * 1024  # the request's header block (431 above it)
    # a request's head must arrive within this, counted from when the connection
    # waits for it: it closes slow-header (slowloris) and idle kept-alive connections
    header_timeout: float = 10.0
    body_timeout: float = 30.0  # a body that sends nothing for this long: 408, closed

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to the SQLite file in the data directory."""
        if self.store:
            return self.store
        return f"sqlite:///{(self.data_dir / 'aonode.sqlite3').resolve()}"

    @property
    def wallet_path(self) -> Path:
        """The node's main wallet, generated on first start."""
        return self.data_dir / "wallet.json"

    def validated(self) -> NodeConfig:
        """Refuse configurations the node cannot honour, at start-up, clearly."""
        if self.mode is Mode.REMOTE_CONFIRMATION and not self.upload_url:
            raise ConfigError(
                "mode remote_confirmation answers once an Arweave upload target accepted "
                "the assignment: give one with --upload-url URL (env AONODE_UPLOAD_URL), "
                "or use aggressive or local_confirmation"
            )
        if self.upload_url is not None:
            parts = urlsplit(self.upload_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"upload url {self.upload_url!r}: want http(s)://host[:port] "
                    "(an Arweave node or arlocal)"
                )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range 0..65535")
        if self.max_body < 1024:
            raise ConfigError("max-body must be at least 1024 bytes")
        if self.abort_seconds <= 0:
            raise ConfigError("abort time must be positive")
        if self.queue_size < 1:
            raise ConfigError("queue size must be at least 1")
        if self.sign_threads < 1:
            raise ConfigError("sign threads must be at least 1")
        for key, url in self.scheduler_map.items():
            check_node_url(key, url)
        if self.lua_memory < 1024 * 1024:
            raise ConfigError("lua memory must be at least 1MiB")
        if self.push_retry_seconds <= 0:
            raise ConfigError("push retry seconds must be positive")
        if self.operator_token is not None and (
            len(self.operator_token) < 8 or any(c.isspace() for c in self.operator_token)
        ):
            raise ConfigError("the operator token needs at least 8 characters and no spaces")
        if not 1 <= self.cron_max_per_owner <= self.cron_max_tasks <= 10_000_000:
            raise ConfigError("want 1 <= cron max per owner <= cron max tasks <= 10000000")
        if not 1 <= self.cron_min_interval_ms <= 86_400_000:
            raise ConfigError("cron min interval must be 1 ms .. 1 day")
        if self.max_header < 1024:
            raise ConfigError("max-header must be at least 1024 bytes")
        for name in ("header_timeout", "body_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name.replace('_', '-')} must be positive")
        for name in ("dryruns_per_client", "dryruns_total", "quota_keys"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must not be negative")
        return self


def check_node_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if not key or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"scheduler map entry {key}={url!r}: want KEY=http(s)://host:port")


def parse_scheduler_map(entries: Iterable[str]) -> dict[str, str]:
    """``["PID=http://h:1", "ADDRESS=http://h:2"]`` → a map (checked)."""
    mapping: dict[str, str] = {}
    for entry in entries:
        key, eq, url = entry.strip().partition("=")
        if not eq:
            raise ConfigError(f"scheduler map entry {entry!r}: want KEY=URL")
        check_node_url(key.strip(), url.strip())
        mapping[key.strip()] = url.strip().rstrip("/")
    return mapping


def parse_mode(value: str) -> Mode:
    try:
        return Mode(value.strip().lower().replace("-", "_"))
    except ValueError:
        accepted = ", ".join(m.value for m in Mode)
        raise ConfigError(f"unknown mode {value!r}; accepted: {accepted}") from None


def parse_size(value: str) -> int:
    """``10MiB``, ``512k``, ``1048576`` → bytes."""
    text = value.strip().lower().replace(" ", "")
    units = {
        "kib": 1024,
        "kb": 1000,
        "k": 1024,
        "mib": 1024**2,
        "mb": 1000**2,
        "m": 1024**2,
        "gib": 1024**3,
        "gb": 1000**3,
        "g": 1024**3,
        "b": 1,
    }
    number, factor = text, 1
    for unit, scale in units.items():
        if text.endswith(unit):
            number, factor = text[: -len(unit)], scale
            break
    try:
        return int(float(number) * factor)
    except ValueError:
        raise ConfigError(f"not a size: {value!r} (e.g. 10MiB, 512k, 1048576)") from None


def from_env(base: NodeConfig, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Apply ``AONODE_*`` variables over ``base``."""
    env = os.environ if environ is None else environ
    changes: dict[str, object] = {}
    if v := env.get("AONODE_HOST"):
        changes["host"] = v
    if v := env.get("AONODE_PORT"):
        changes["port"] = _int("AONODE_PORT", v)
    if v := env.get("AONODE_DATA_DIR"):
        changes["data_dir"] = Path(v)
    if v := env.get("AONODE_WALLET"):
        changes["wallets"] = tuple(Path(p) for p in v.split(os.pathsep) if p)
    if v := env.get("AONODE_MODE"):
        changes["mode"] = parse_mode(v)
    if v := env.get("AONODE_MAX_BODY"):
        changes["max_body"] = parse_size(v)
    if v := env.get("AONODE_STORE"):
        changes["store"] = v
    if v := env.get("AONODE_GATEWAY"):
        changes["gateway"] = v
    if v := env.get("AONODE_ADVERTISE_URL"):
        changes["advertise_url"] = v
    if v := env.get("AONODE_ABORT_SECONDS"):
        changes["abort_seconds"] = _float("AONODE_ABORT_SECONDS", v)
    if v := env.get("AONODE_QUEUE_SIZE"):
        changes["queue_size"] = _int("AONODE_QUEUE_SIZE", v)
    if v := env.get("AONODE_SIGN_THREADS"):
        changes["sign_threads"] = _int("AONODE_SIGN_THREADS", v)
    if v := env.get("AONODE_SNAPSHOT_SLOTS"):
        changes["snapshot_slots"] = _int("AONODE_SNAPSHOT_SLOTS", v)
    if v := env.get("AONODE_SNAPSHOT_SECONDS"):
        changes["snapshot_seconds"] = _float("AONODE_SNAPSHOT_SECONDS", v)
    if v := env.get("AONODE_WORKER_MAX_IDLE"):
        changes["worker_max_idle"] = _float("AONODE_WORKER_MAX_IDLE", v)
    if v := env.get("AONODE_ASYNC_CACHE"):
        changes["async_cache"] = _bool("AONODE_ASYNC_CACHE", v)
    if v := env.get("AONODE_PUSH_MAX_DEPTH"):
        changes["push_max_depth"] = _int("AONODE_PUSH_MAX_DEPTH", v)
    if v := env.get("AONODE_PUSH_MAX_MESSAGES"):
        changes["push_max_messages"] = _int("AONODE_PUSH_MAX_MESSAGES", v)
    if v := env.get("AONODE_UPLOAD_URL"):
        changes["upload_url"] = v
    if v := env.get("AONODE_SCHEDULER_MAP"):
        changes["scheduler_map"] = parse_scheduler_map(e for e in v.split(",") if e.strip())
    if v := env.get("AONODE_LUA_MEMORY"):
        changes["lua_memory"] = parse_size(v)
    if v := env.get("AONODE_OPERATOR_TOKEN"):
        changes["operator_token"] = v
    if v := env.get("AONODE_CRON_MAX_PER_OWNER"):
        changes["cron_max_per_owner"] = _int("AONODE_CRON_MAX_PER_OWNER", v)
    if v := env.get("AONODE_CRON_MAX_TASKS"):
        changes["cron_max_tasks"] = _int("AONODE_CRON_MAX_TASKS", v)
    if v := env.get("AONODE_CRON_MIN_INTERVAL_MS"):
        changes["cron_min_interval_ms"] = _int("AONODE_CRON_MIN_INTERVAL_MS", v)
    changes.update(limits_from_env(env))
    return replace(base, **changes)  # type: ignore[arg-type]


# name → parser of the quota and connection limits; env AONODE_<NAME>, flag --<name>
LIMITS: dict[str, Callable[[str], object]] = {
    "quota_messages": parse_rate,
    "quota_spawns": parse_rate,
    "quota_store_bytes": parse_rate,
    "quota_reads": parse_rate,
    "dryruns_per_client": lambda v: _int("dryruns-per-client", v),
    "dryruns_total": lambda v: _int("dryruns-total", v),
    "quota_keys": lambda v: _int("quota-keys", v),
    "max_header": parse_size,
    "header_timeout": lambda v: _float("header-timeout", v),
    "body_timeout": lambda v: _float("body-timeout", v),
}


def limits_from_env(env: Mapping[str, str]) -> dict[str, object]:
    """The ``AONODE_QUOTA_*`` and connection-limit variables that are set, parsed."""
    return {
        name: parse(v) for name, parse in LIMITS.items() if (v := env.get(f"AONODE_{name.upper()}"))
    }


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def _bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
