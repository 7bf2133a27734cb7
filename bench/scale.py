"""Scale-out: assignments/s of 1, 2 and 3 nodes on one PostgreSQL, against its limits.

Every figure is printed next to limits measured in the same run: PostgreSQL's
own commits/s (a raw asyncpg ``INSERT`` + ``COMMIT`` loop with
``synchronous_commit = on``, one connection and three), the disk's
write+fsync/s, and the SQLite single-node figure for the same load.

The PostgreSQL server is a throwaway one (``tests/pg_fixture.py``: ``initdb`` +
``postgres`` in a temp dir, fsync on).  Nodes are real ``aonode serve``
processes sharing one ed25519 scheduler wallet, ``local_confirmation``, each
with its own ``--advertise-url``; 100 processes are spawned round-robin over
the nodes (the node asked takes the lease).  Clients then learn where each
process lives the way HTTP clients do: a warm-up posts messages to random
nodes and follows the ``307`` to the owner, and the measured load sends each
message to the owner it was redirected to (a client that remembers its
redirects).  The load comes from one generator process (``bench/loadgen.py``
connections, 64 in all, split over the nodes).  Nothing is pinned: nodes,
PostgreSQL and the generator share the machine's cores as they would.

    python bench/scale.py            # ~2 min
    python bench/scale.py --quick    # shorter runs, ~1 min

The last line is a JSON object with the tracked figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tests.pg_fixture import PostgresServer, standalone_server  # noqa: E402

import limits  # noqa: E402
import loadgen  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402
from schedule import spawn  # noqa: E402

ANS = {"content-type": "application/ans104"}
CONCURRENCY = 64
PROCESSES = 100
PATH = "/~scheduler@1.0/schedule"


# -- limits ------------------------------------------------------------------------------


async def pg_commits_per_s(url: str, connections: int = 1, seconds: float = 2.0) -> float:
    """Single-row INSERT + COMMIT transactions/s (``synchronous_commit = on``)."""
    setup = await asyncpg.connect(url)
    await setup.execute("CREATE TABLE IF NOT EXISTS commit_probe (n bigint, pad bytea)")
    await setup.close()
    conns = [
        await asyncpg.connect(url, server_settings={"synchronous_commit": "on"})
        for _ in range(connections)
    ]
    pad = os.urandom(1024)
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()

    async def loop(conn: asyncpg.Connection) -> int:
        n = 0
        while time.perf_counter() < deadline:
            await conn.execute("INSERT INTO commit_probe VALUES ($1, $2)", n, pad)  # autocommit
            n += 1
        return n

    total = sum(await asyncio.gather(*(loop(c) for c in conns)))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    return total / elapsed


# -- nodes -------------------------------------------------------------------------------


@contextlib.contextmanager
def nodes(
    count: int, store: str | None, wallet: wallet_mod.Wallet
) -> Iterator[tuple[list[str], list[int]]]:
    """``count`` real ``aonode serve`` processes on ``store`` (None: each its own SQLite)."""
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="aonode-scale-") as tmp:
        try:
            urls = []
            for i in range(count):
                data = Path(tmp) / f"node{i}"
                data.mkdir()
                wallet_mod.save(wallet, data / "wallet.json")
                port = limits._free_port()
                url = f"http://127.0.0.1:{port}"
                args = [sys.executable, "-m", "aonode.ops.cli", "serve", "--data-dir", str(data)]
                args += ["--port", str(port), "--advertise-url", url]
                args += ["--mode", "local_confirmation"]
                # one signer floods on purpose: the public-node quotas are lifted
                args += ["--quota-messages", "off", "--quota-spawns", "off", "--quota-reads", "off"]
                if store:
                    args += ["--store", store]
                log = data / "node.log"  # its log, out of the benchmark's output
                with open(log, "w") as err:
                    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True)
                procs.append(proc)
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("aonode listening on "):
                    tail = log.read_text()[-2000:]
                    raise RuntimeError(f"node did not start (rc={proc.poll()}): {line!r}\n{tail}")
                threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain its log
                urls.append(url)
            yield urls, [proc.pid for proc in procs]
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()


def message(user: wallet_mod.Wallet, pid: str) -> bytes:
    return ans104.sign(
        user,
        data=b"x" * 64,
        target=b64url_decode(pid),
        anchor=os.urandom(32),
        tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", "Bench")],
    ).raw


def learn_owners(
    urls: list[str], pids: list[str], user: wallet_mod.Wallet
) -> tuple[dict[str, str], float]:
    """Post one message per process to a random node, following 307s: owner per process,
    and the share of posts that were redirected."""
    rng = random.Random(1)
    owners: dict[str, str] = {}
    redirected = 0
    with httpx.Client(timeout=60, follow_redirects=True) as client:
        for pid in pids:
            r = client.post(
                f"{rng.choice(urls)}/{pid}/schedule", content=message(user, pid), headers=ANS
            )
            r.raise_for_status()
            redirected += bool(r.history)
            parts = urlsplit(str(r.url))
            owners[pid] = f"{parts.scheme}://{parts.netloc}"
    return owners, redirected / len(pids)


def plan(owners: dict[str, str], user: wallet_mod.Wallet, n: int) -> list[tuple[str, list[bytes]]]:
    """``n`` messages spread evenly over the processes, grouped by the owner node."""
    pids = list(owners)
    by_node: dict[str, list[bytes]] = {}
    for i in range(n):
        pid = pids[i % len(pids)]
        by_node.setdefault(owners[pid], []).append(message(user, pid))
    return list(by_node.items())


# -- one load generator process, several targets -------------------------------------------


async def _child_load(jobs: list[tuple[str, list[bytes]]], concurrency: int) -> tuple[float, list]:
    each = max(1, concurrency // len(jobs))
    t0 = time.perf_counter()
    results = await asyncio.gather(
        *(
            loadgen.run_load(f"{url}{PATH}", bodies, concurrency=each, headers=ANS)
            for url, bodies in jobs
        )
    )
    wall = time.perf_counter() - t0
    out = [
        {
            "count": r.count,
            "errors": r.errors,
            "statuses": r.statuses,
            "p99_ms": r.p99_ms,
            "cpu_s": r.client_cpu_s,  # the whole generator process's, during that run
        }
        for r in results
    ]
    return wall, out


def load(jobs: Sequence[tuple[str, list[bytes]]], watch: Callable[[], float]) -> dict[str, float]:
    """Run ``jobs`` from one generator process: assignments/s over the wall time of all
    targets at once, the worst p99, and the cores used by the generator and by ``watch``
    (CPU seconds per second of that wall time; what ``watch`` counts idles outside it)."""
    with tempfile.TemporaryDirectory(prefix="scale-load-") as tmp:
        spec = Path(tmp) / "spec.pkl"
        spec.write_bytes(pickle.dumps((list(jobs), CONCURRENCY)))
        watched0 = watch()
        subprocess.run([sys.executable, __file__, "--load-child", str(spec)], check=True)
        watched = watch() - watched0
        wall, out = pickle.loads(spec.with_suffix(".out").read_bytes())
    for r in out:
        if r["errors"] or set(r["statuses"]) != {200}:
            raise RuntimeError(f"load failed: {r}")
    return {
        "per_s": sum(r["count"] for r in out) / wall,
        "p99_ms": max(r["p99_ms"] for r in out),
        "loadgen_cores": max(r["cpu_s"] for r in out) / wall,
        "watched_cores": watched / wall,
        "wall": wall,
    }


def cpu_seconds(pids: set[int], children_of: int | None = None) -> float:
    """CPU time used so far by ``pids`` and by the children of ``children_of`` (/proc)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid in pids or (children_of is not None and ppid == children_of):
            total += int(fields[11]) + int(fields[12])  # utime + stime, in ticks
    return total / os.sysconf("SC_CLK_TCK")


async def wal_syncs(url: str) -> tuple[int, int]:
    """(WAL fsyncs, committed transactions) so far, server-wide / this database."""
    conn = await asyncpg.connect(url)
    try:
        syncs = await conn.fetchval("SELECT wal_sync FROM pg_stat_wal")
        commits = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(syncs), int(commits)
    finally:
        await conn.close()


def _postmaster(server: PostgresServer) -> int:
    return int((server.data / "postmaster.pid").read_text().split()[0])


def run(
    count: int, server: PostgresServer | None, user: wallet_mod.Wallet, seconds: float
) -> dict[str, float]:
    wallet = wallet_mod.generate("ed25519")
    store = server.create_database("scale") if server else None
    postmaster = _postmaster(server) if server else None
    with nodes(count, store, wallet) as (urls, node_pids):
        pids = spawn(urls, wallet.address, user, PROCESSES)  # each owned where posted
        owners, redirected = learn_owners(urls, pids, user)
        warm = load(plan(owners, user, 1500), lambda: 0.0)
        n = max(3000, int(warm["per_s"] * seconds))
        jobs = plan(owners, user, n)
        before = asyncio.run(wal_syncs(store)) if store else (0, 0)
        pg0 = cpu_seconds(set(), postmaster) if postmaster else 0.0
        result = load(jobs, lambda: cpu_seconds(set(node_pids)))
        pg_cores = (cpu_seconds(set(), postmaster) - pg0) if postmaster else 0.0
        after = asyncio.run(wal_syncs(store)) if store else (0, 0)
    return {
        **result,
        "node_cores": result.pop("watched_cores"),
        "pg_cores": pg_cores / result["wall"],
        "redirected": redirected,
        "owners": len(set(owners.values())),
        "wal_syncs_per_assignment": (after[0] - before[0]) / n if store else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter runs (~1 min)")
    p.add_argument("--seconds", type=float, default=None, help="length of each measured run")
    p.add_argument("--load-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.load_child:
        jobs, concurrency = pickle.loads(args.load_child.read_bytes())
        result = loadgen._run_coroutine(_child_load(jobs, concurrency))
        args.load_child.with_suffix(".out").write_bytes(pickle.dumps(result))
        return 0
    seconds = args.seconds or (2.0 if args.quick else 4.0)
    user = wallet_mod.generate("ed25519")

    busy = limits.background_busy()
    if busy > 0.05:
        print(f"warning: the machine is {busy:.0%} busy; figures will be low", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        fsync = limits.fsync_per_s(tmp)
    print("running SQLite, 1 node …", file=sys.stderr)
    sqlite = run(1, None, user, seconds)
    with standalone_server() as server:
        probe = server.create_database("probe")
        commit1 = asyncio.run(pg_commits_per_s(probe, 1))
        commit3 = asyncio.run(pg_commits_per_s(probe, 3))
        results = {}
        for count in (1, 2, 3):
            print(f"running PostgreSQL, {count} node(s) …", file=sys.stderr)
            results[count] = run(count, server, user, seconds)
    busy_after = limits.background_busy()

    print()
    print("limits measured in this run")
    print(f"  4 KiB write+fsync/s                         {fsync:>10,.0f}")
    print(f"  PostgreSQL INSERT+COMMIT/s, 1 connection    {commit1:>10,.0f}")
    print(f"  PostgreSQL INSERT+COMMIT/s, 3 connections   {commit3:>10,.0f}")
    print(f"  machine busy before / after the run         {busy:>9.0%} / {busy_after:.0%}")
    print()
    print(
        f"{'scenario':<26}{'assign/s':>10}{'p99 ms':>9}{'307s':>7}{'WAL syncs':>11}"
        f"{'cores: nodes':>14}{'PG':>6}{'load':>6}   vs limit"
    )
    rows = [("SQLite, 1 node", sqlite)] + [
        (f"PostgreSQL, {c} node(s)", r) for c, r in results.items()
    ]
    for name, r in rows:
        pg = name.startswith("PostgreSQL")
        print(
            f"{name:<26}{r['per_s']:>10,.0f}{r['p99_ms']:>9.1f}"
            + (f"{r['redirected']:>7.0%}{r['wal_syncs_per_assignment']:>11.3f}" if pg else " " * 18)
            + f"{r['node_cores']:>14.2f}{r['pg_cores']:>6.2f}{r['loadgen_cores']:>6.2f}"
            + (
                f"   {r['per_s'] / commit1:.2f} × PG commits/s (1 conn),"
                f" {r['per_s'] / sqlite['per_s']:.2f} × SQLite"
                if pg
                else ""
            )
        )
    print("(WAL syncs per assignment; cores = CPU seconds per wall second while the load ran)")
    summary = {
        "sqlite_1_per_s": round(sqlite["per_s"], 1),
        **{f"pg_{c}_per_s": round(r["per_s"], 1) for c, r in results.items()},
        "pg_commit_per_s": round(commit1, 1),
        "pg_commit_3conn_per_s": round(commit3, 1),
        "fsync_per_s": round(fsync, 1),
        "busy_before": round(busy, 3),
        "busy_after": round(busy_after, 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
