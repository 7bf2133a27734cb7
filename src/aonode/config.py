"""Node configuration: one typed, frozen value passed explicitly everywhere.

Sources, lowest precedence first: defaults, environment (``AONODE_<NAME>``),
command-line flags.  Nothing in the node reads configuration from globals.

Each setting an operator can give is one row of :data:`SETTINGS` (field, variable,
flag, parser, help); :func:`from_env` and ``aonode serve``'s flags and help are
both derived from it, so a new setting is one field here and one row there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from aonode.config_text import (
    check_node_url,
    parse_bool,
    parse_float,
    parse_int,
    parse_scheduler_map,
    parse_size,
)
from aonode.errors import ConfigError
from aonode.quotas import Rate, parse_rate

__all__ = [
    "SETTINGS",
    "Mode",
    "NodeConfig",
    "Setting",
    "from_env",
    "from_flags",
    "parse_mode",
    "parse_scheduler_map",
    "parse_size",
]


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
    # OS processes `aonode serve` runs (aonode.cluster); 0 (the default): one per
    # core this process may run on.  A Node built in-process is always one
    # process, whatever this says.
    workers: int = 0
    page_limit: int = 1000
    snapshot_slots: int = 100
    wasm_snapshot_slots: int = 1000
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
        if self.snapshot_slots < 1 or self.wasm_snapshot_slots < 1:
            raise ConfigError("snapshot slots must be at least 1")
        if self.sign_threads < 1:
            raise ConfigError("sign threads must be at least 1")
        if self.workers < 0:
            raise ConfigError(f"workers must be at least 1 (0: one per core), not {self.workers}")
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


def parse_mode(value: str) -> Mode:
    try:
        return Mode(value.strip().lower().replace("-", "_"))
    except ValueError:
        accepted = ", ".join(m.value for m in Mode)
        raise ConfigError(f"unknown mode {value!r}; accepted: {accepted}") from None


@dataclass(frozen=True, slots=True)
class Kind:
    """How the texts given for a setting become its value.

    ``parse(where, texts)`` gets every text given (one, unless ``split`` is set:
    then the flag is repeatable and the variable holds several, split on it);
    ``metavar`` is how ``--help`` shows the value."""

    parse: Callable[[str, Sequence[str]], object]
    metavar: str = "<str>"
    split: str | None = None


def _last(parse: Callable[[str, str], object], metavar: str = "<str>") -> Kind:
    return Kind(lambda where, texts: parse(where, texts[-1]), metavar)


TEXT = _last(lambda _where, text: text)
INT = _last(parse_int, "<int>")
FLOAT = _last(parse_float, "<float>")
BOOL = _last(parse_bool, "<bool>")
PATH = _last(lambda _where, text: Path(text), "<path>")
SIZE = _last(lambda _where, text: parse_size(text))
RATE = _last(lambda _where, text: parse_rate(text))
MODE = _last(lambda _where, text: parse_mode(text))
PATHS = Kind(lambda _w, texts: tuple(Path(t) for t in texts), "<list[Path]>", os.pathsep)
NODE_MAP = Kind(lambda _w, texts: parse_scheduler_map(texts), "<list[str]>", ",")


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting an operator gives: the :class:`NodeConfig` field ``name``, read from
    ``AONODE_<NAME>`` (or ``env``) and from ``--<name>`` (or ``flag``; ``None``: the
    environment only).  The typed default is the field's; ``default`` is how help shows it."""

    name: str
    kind: Kind
    help: str
    default: str | None = None
    env_note: str = ""
    env: str = ""
    flag: str | None = ""

    @property
    def variable(self) -> str:
        return self.env or f"AONODE_{self.name.upper()}"

    @property
    def option(self) -> str | None:
        """The flag without its dashes, or None for a setting of the environment only."""
        return None if self.flag is None else self.flag or self.name.replace("_", "-")

    @property
    def help_line(self) -> str:
        default = f"; default {self.default}" if self.default else ""
        return f"{self.help} (env {self.variable}{self.env_note}{default})"

    def parse(self, where: str, texts: Sequence[str]) -> object:
        return self.kind.parse(where, texts)


# In ``aonode serve --help`` order; README "Running a public node" says why each limit.
SETTINGS: tuple[Setting, ...] = (
    Setting("host", TEXT, "Address to listen on", "127.0.0.1"),
    Setting("port", INT, "Port (0: any free port)", "8734"),
    Setting("data_dir", PATH, "Holds the store and wallet.json", "./.aonode"),
    Setting(
        "wallets",
        PATHS,
        "Extra scheduler wallet (JWK); repeatable",
        env="AONODE_WALLET",
        flag="wallet",
    ),
    Setting("mode", MODE, "aggressive | local_confirmation | remote_confirmation"),
    Setting("max_body", SIZE, "Request body limit, e.g. 10MiB"),
    Setting(
        "store", TEXT, "sqlite:///path (default: in the data dir) or postgresql://user@host:port/db"
    ),
    Setting("gateway", TEXT, "Arweave gateway URL for block info; none = offline"),
    Setting(
        "advertise_url",
        TEXT,
        "The URL other nodes should use for this one, signed into its location record",
        "http://HOST:PORT",
    ),
    Setting(
        "workers",
        INT,
        "Node processes behind the one address: 0 = one per core, 1 = a single process",
        "0",
    ),
    Setting("sign_threads", INT, "Threads that make RSA signatures; one per core", "2"),
    Setting("abort_seconds", FLOAT, "A request not assigned within this time is dropped", "10"),
    Setting(
        "scheduler_map",
        NODE_MAP,
        "KEY=URL: push to process id or scheduler address KEY at the node URL; repeatable",
        env_note=", comma-separated",
    ),
    Setting(
        "upload_url",
        TEXT,
        "Upload assignments and messages to this Arweave node (or arlocal); "
        "required by remote_confirmation",
    ),
    Setting(
        "lua_memory",
        SIZE,
        "Memory cap of each live Lua process, C allocations included, e.g. 64MiB; "
        "a message past it fails and is rolled back",
        "64MiB",
    ),
    Setting(
        "operator_token",
        TEXT,
        "The operator's token: a request with Authorization: Bearer TOKEN may create "
        "and stop any cron task",
        "none = no operator",
        env_note=", preferred: a flag shows in ps",
        flag="operator",
    ),
    Setting("cron_max_per_owner", INT, "Cron tasks one signer may have at once", "100"),
    Setting("cron_max_tasks", INT, "Cron tasks the node holds at once", "10000"),
    Setting(
        "cron_min_interval_ms", INT, "Shortest interval of an every-task, in milliseconds", "10000"
    ),
    Setting("quota_messages", RATE, "Messages per signer, BURST:AMOUNT/PERIOD or off", "500:20/s"),
    Setting("quota_spawns", RATE, "Spawns per signer", "50:6/min"),
    Setting(
        "quota_store_bytes",
        RATE,
        "Bytes per signer through /~message@1.0/store",
        "1GiB:1GiB/day",
    ),
    Setting("quota_reads", RATE, "Unsigned requests and dry runs per client address", "2000:200/s"),
    Setting("dryruns_per_client", INT, "Concurrent dry runs per client address, 0 = no cap", "4"),
    Setting("dryruns_total", INT, "Concurrent dry runs on the node, 0 = no cap", "32"),
    Setting("quota_keys", INT, "Signers and clients whose quotas are remembered (LRU)", "100000"),
    Setting("max_header", SIZE, "Request header block cap, 431 above", "16KiB"),
    Setting(
        "header_timeout",
        FLOAT,
        "Seconds for a request's headers to arrive, counted from when the connection "
        "waits for one: closes slow-header and idle connections",
        "10",
    ),
    Setting("body_timeout", FLOAT, "Seconds a request body may stall before 408 and close", "30"),
    # -- the environment only (README "Process cache", "Push") --
    Setting("queue_size", INT, "Requests waiting per process before 503", "1024", flag=None),
    Setting("snapshot_slots", INT, "Snapshot a process every N slots", "100", flag=None),
    Setting(
        "wasm_snapshot_slots",
        INT,
        "Snapshot a WASM process every N slots (its state is large to dump)",
        "1000",
        flag=None,
    ),
    Setting("snapshot_seconds", FLOAT, "Or when this long passed since the last", "60", flag=None),
    Setting(
        "worker_max_idle",
        FLOAT,
        "Unload a worker unused this long to its snapshot",
        "300",
        flag=None,
    ),
    Setting(
        "async_cache", BOOL, "Write results and snapshots in the background", "true", flag=None
    ),
    Setting(
        "push_max_depth",
        INT,
        "Depth of a push tree (outbox of an outbox …) before 508",
        "32",
        flag=None,
    ),
    Setting(
        "push_max_messages", INT, "Messages one push tree may deliver before 508", "1000", flag=None
    ),
)


def from_env(base: NodeConfig, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Apply the ``AONODE_*`` variables that are set (not empty) over ``base``."""
    env = os.environ if environ is None else environ
    changes: dict[str, object] = {}
    for setting in SETTINGS:
        if text := env.get(setting.variable):
            split = setting.kind.split
            texts = [t for t in text.split(split) if t.strip()] if split else [text]
            changes[setting.name] = setting.parse(setting.variable, texts)
    return replace(base, **changes)  # type: ignore[arg-type]


def from_flags(base: NodeConfig, flags: Mapping[str, str | Sequence[str] | None]) -> NodeConfig:
    """Apply ``serve``'s flags, given by setting name (None or empty: not given)."""
    by_name = {setting.name: setting for setting in SETTINGS}
    changes: dict[str, object] = {}
    for name, given in flags.items():
        if given is None or len(given) == 0:
            continue
        setting = by_name[name]
        texts = [given] if isinstance(given, str) else list(given)
        changes[name] = setting.parse(f"--{setting.option}", texts)
    return replace(base, **changes)  # type: ignore[arg-type]
