"""A real PostgreSQL server for tests: ``initdb`` + ``postgres`` in a temp directory.

No mock: the server is Debian's PostgreSQL (``scripts/test`` installs it), run
as an unprivileged system user when the tests run as root (PostgreSQL refuses
to run as root), listening on a free port of 127.0.0.1 and on a Unix socket in
its own directory.  It is started once per pytest run, however many modules
use the fixtures (the running server lives in ``config.stash``), and removed
with its directory at the end of the run.

Use it from any test module or conftest::

    from tests.pg_fixture import pg_server, pg_url  # noqa: F401  (fixtures)

``pg_url`` is a fresh, empty database per test; ``pg_server`` the server, for
tests that make several databases (``pg_server.create_database()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

T = TypeVar("T")

PG_USER = "aonode-pg"
"""The system user the server runs as when the tests run as root."""

DB_SUPERUSER = "aonode"
"""The database superuser initdb creates (trust authentication, local only)."""

_READY_WITHIN = 60.0  # seconds: a generous bound on a cold start, not a timing assertion
_STOP_WITHIN = 30.0


class PostgresMissing(RuntimeError):
    pass


def _find_binary(name: str) -> str:
    """``initdb`` / ``postgres`` from PATH, else the newest Debian major version."""
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if found:
        return found
    raise PostgresMissing(
        f"PostgreSQL's {name!r} was not found (looked in /usr/lib/postgresql/*/bin and PATH)."
        " Run scripts/test (it installs Debian's postgresql) or: apt-get install -y postgresql"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_as() -> str | None:
    """The user to run the server as: ``PG_USER`` (created if missing) when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                PG_USER,
            ],
            check=True,
            capture_output=True,
        )
    return PG_USER


class PostgresServer:
    """One running ``postgres`` on 127.0.0.1:``port`` with its data in a temp directory."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.initdb = _find_binary("initdb")
        self.postgres = _find_binary("postgres")
        self.fsync = fsync
        self.user = _run_as()
        self.base = Path(tempfile.mkdtemp(prefix="aonode-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "run"
        self.log = self.base / "postgres.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._databases = itertools.count()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        try:
            self.socket_dir.mkdir()
            if self.user is not None:
                entry = pwd.getpwnam(self.user)
                for path in (self.base, self.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.base, 0o700)
            self._initdb()
            for _attempt in range(3):  # a free port can be taken before postgres binds it
                self.port = _free_port()
                if self._launch():
                    return
            raise RuntimeError(f"postgres did not start; its log:\n{self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _as_user(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        result = subprocess.run(
            [
                self.initdb,
                "--pgdata",
                str(self.data),
                "--username",
                DB_SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-instructions",
            ],
            capture_output=True,
            cwd=self.base,
            env=self._env(),
            **self._as_user(),  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({result.returncode}):\n{result.stdout.decode()}"
                f"\n{result.stderr.decode()}"
            )

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C", "LC_ALL": "C"}

    def _launch(self) -> bool:
        """Start postgres and poll until it accepts a connection; False if it exited."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "on" if self.fsync else "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "logging_collector": "off",
        }
        args = [self.postgres, "-D", str(self.data)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.base,
                env=self._env(),
                start_new_session=True,  # a ^C to pytest does not hit the server mid-test
                **self._as_user(),  # type: ignore[call-overload]
            )
        deadline = time.monotonic() + _READY_WITHIN
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            if _run_sync(self._accepts_connections):
                return True
            time.sleep(0.05)  # readiness polling of an external process, bounded above
        self.stop()
        raise RuntimeError(f"postgres not ready within {_READY_WITHIN}s:\n{self._log_tail()}")

    async def _accepts_connections(self) -> bool:
        try:
            conn = await asyncpg.connect(self.url("postgres"), timeout=5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            return False
        await conn.close()
        return True

    def halt(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected); the data stays."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(_STOP_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def resume(self) -> None:
        """Start the halted server again on the same port and data."""
        if self._process is not None:
            raise RuntimeError("the server is running")
        if not self._launch():
            raise RuntimeError(f"postgres did not restart; its log:\n{self._log_tail()}")

    def stop(self) -> None:
        """Halt, then remove the directory.  Safe to call twice."""
        self.halt()
        shutil.rmtree(self.base, ignore_errors=True)

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-4000:]
        return "(no log)"

    # -- databases ---------------------------------------------------------------

    def url(self, database: str, user: str = DB_SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    async def create_database_async(self, prefix: str = "test") -> str:
        """A new, empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._databases)}"
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def create_database(self, prefix: str = "test") -> str:
        """:meth:`create_database_async` for code outside an event loop."""
        return _run_sync(lambda: self.create_database_async(prefix))


def _run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a thread of its own.

    Not ``asyncio.run`` here: that would replace the calling thread's current
    event loop, which pytest-asyncio owns when a fixture is set up.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()


_SERVER = pytest.StashKey[PostgresServer]()


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    """The run's PostgreSQL server, started on first use; fails (not skips) if missing."""
    config = request.config
    server = config.stash.get(_SERVER, None)
    if server is None:
        try:
            server = PostgresServer()
        except PostgresMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        server.start()
        config.stash[_SERVER] = server
        config.add_cleanup(server.stop)
    return server


@pytest.fixture
async def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the run's server."""
    return await pg_server.create_database_async()


@contextlib.contextmanager
def standalone_server(**options: bool) -> Iterator[PostgresServer]:
    """A server of its own (e.g. for a benchmark, or a test that stops the server)."""
    server = PostgresServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
