"""Push throughput of a real ``aonode serve``: deliveries/s, next to its scheduling rate.

Two shapes, each one sync ``POST /{pid}~process@1.0/push`` of a new Eval
message, timed from the client:

- **fan-out**: one process sends one message to each of 100 processes
  (100 deliveries, depth 1);
- **chain**: a process pings itself with a counter up to 100 (100
  deliveries, depth 100; the node runs with ``AONODE_PUSH_MAX_DEPTH=200``).

A delivery is: sign the delivery message with the node wallet, store it in
the push ledger (durable), schedule it (assignment signed, durable), compute
it (Lua), and walk its outbox.  The scheduling rate of the same node in the
same run is printed beside it: 64 concurrent clients (the node's ceiling) and
one client posting one message at a time (a push walk is sequential too).

    python bench/push.py            # ed25519 and RSA node wallets, 5 rounds each
    python bench/push.py --quick    # 2 rounds each

The last line is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import limits  # noqa: E402
import loadgen  # noqa: E402
from aonode import wallet as wallet_mod  # noqa: E402
from aonode.codec import ans104  # noqa: E402
from aonode.codec.b64 import b64url_decode  # noqa: E402

ANS = {"content-type": "application/ans104"}
FAN_OUT = 100
CHAIN = 100
LUA = [("Execution-Device", "lua@5.3a")]


@contextlib.contextmanager
def node_process(kind: str) -> Iterator[tuple[str, str]]:
    """A real ``aonode serve`` (local_confirmation) with a fresh data dir and wallet."""
    with tempfile.TemporaryDirectory(prefix="aonode-bench-push-") as tmp:
        w = wallet_mod.generate(kind)
        wallet_mod.save(w, Path(tmp) / "wallet.json")
        args = [sys.executable, "-m", "aonode.ops.cli", "serve", "--data-dir", tmp]
        args += ["--port", str(limits._free_port())]
        # one signer floods on purpose: the public-node quotas are lifted
        args += ["--quota-messages", "off", "--quota-spawns", "off", "--quota-reads", "off"]
        env = {**os.environ, "AONODE_PUSH_MAX_DEPTH": str(CHAIN * 2)}
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith("aonode listening on "):
                raise RuntimeError(f"node did not start: {line!r} (rc={proc.poll()})")
            yield line.split()[3], w.address
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def spawn(client: httpx.Client, user: wallet_mod.Wallet, address: str, lua: bool) -> str:
    item = ans104.sign(
        user,
        data=os.urandom(8).hex().encode(),
        tags=[
            ("Data-Protocol", "ao"),
            ("Variant", "ao.N.1"),
            ("Type", "Process"),
            ("Scheduler", address),
            *(LUA if lua else []),
        ],
    )
    client.post("/~scheduler@1.0/schedule", content=item.raw, headers=ANS).raise_for_status()
    return item.id


def message(user: wallet_mod.Wallet, pid: str, code: str, action: str = "Eval") -> bytes:
    return ans104.sign(
        user,
        data=code.encode(),
        target=b64url_decode(pid),
        anchor=os.urandom(32),
        tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", action)],
    ).raw


def count(tree: dict[str, object]) -> int:
    n = 0
    for key, value in tree.items():
        if key.isdigit() and isinstance(value, dict) and "resulted-in" in value:
            n += 1 + count(value["resulted-in"])
    return n


def timed_push(client: httpx.Client, pid: str, raw: bytes, expected: int) -> float:
    """Deliveries/s of one sync push (result-depth 0)."""
    t0 = time.perf_counter()
    r = client.post(
        f"/{pid}~process@1.0/push", content=raw, headers=ANS, params={"result-depth": 0}
    )
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    got = count(r.json())
    if got != expected:
        raise RuntimeError(f"push delivered {got}, expected {expected}: {r.text[:500]}")
    return expected / elapsed


def measure(kind: str, rounds: int, user: wallet_mod.Wallet) -> dict[str, float]:
    with node_process(kind) as (url, address), httpx.Client(base_url=url, timeout=600) as client:
        # scheduling rate, same node: 64 concurrent clients, then one at a time
        plain = spawn(client, user, address, lua=False)
        bodies = [message(user, plain, "x", "Bench") for _ in range(2000)]
        many = loadgen.run_load_in_subprocess_sync(
            f"{url}/~scheduler@1.0/schedule", bodies, concurrency=64, headers=ANS
        )
        t0 = time.perf_counter()
        for _ in range(300):
            client.post(
                f"/{plain}/schedule", content=message(user, plain, "x", "Bench"), headers=ANS
            ).raise_for_status()
        one = 300 / (time.perf_counter() - t0)
        # fan-out 1 → 100
        sender = spawn(client, user, address, lua=True)
        targets = [spawn(client, user, address, lua=True) for _ in range(FAN_OUT)]
        names = ", ".join(f"'{t}'" for t in targets)
        fan_code = (
            f"for _, t in ipairs({{ {names} }}) do Send({{ Target = t, Action = 'Fan' }}) end"
        )
        fan = [timed_push(client, sender, message(user, sender, fan_code), FAN_OUT)]
        fan += [
            timed_push(client, sender, message(user, sender, fan_code), FAN_OUT)
            for _ in range(rounds)
        ]
        # chain of depth 100
        chain_pid = spawn(client, user, address, lua=True)
        handler = (
            "Handlers.add('Ping', { Action = 'Ping' }, function(m)\n"
            "  local n = tonumber(m.Count) or 0\n"
            f"  if n < {CHAIN} then\n"
            "    Send({ Target = ao.id, Action = 'Ping', Count = n + 1 })\n"
            "  end\n"
            "end)"
        )
        client.post(
            f"/{chain_pid}/schedule", content=message(user, chain_pid, handler), headers=ANS
        ).raise_for_status()
        start = "Send({ Target = ao.id, Action = 'Ping', Count = 1 })"
        chain = [
            timed_push(client, chain_pid, message(user, chain_pid, start), CHAIN)
            for _ in range(rounds + 1)
        ]
    return {
        f"{kind}_schedule_c64_per_s": many.per_s,
        f"{kind}_schedule_c1_per_s": one,
        f"{kind}_fanout_cold_per_s": fan[0],
        f"{kind}_fanout_per_s": statistics.median(fan[1:]),
        f"{kind}_chain_per_s": statistics.median(chain[1:]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds per shape")
    args = p.parse_args(argv)
    rounds = 2 if args.quick else 5
    busy = limits.background_busy()
    if busy > 0.05:
        print(f"warning: the machine is {busy:.0%} busy; figures will be low", file=sys.stderr)
    user = wallet_mod.generate("ed25519")
    results: dict[str, float] = {"background_busy": busy}
    for kind in ("ed25519", "rsa"):
        print(f"measuring {kind} node …", file=sys.stderr)
        results.update(measure(kind, rounds, user))
    print(
        f"{'node wallet':<12} {'sched c=64':>11} {'sched c=1':>10} "
        f"{'fan-out 100':>12} {'(cold)':>8} {'chain 100':>10}   (per second)"
    )
    for kind in ("ed25519", "rsa"):
        r = {k.removeprefix(kind + "_"): v for k, v in results.items() if k.startswith(kind)}
        print(
            f"{kind:<12} {r['schedule_c64_per_s']:>11.0f} {r['schedule_c1_per_s']:>10.0f} "
            f"{r['fanout_per_s']:>12.0f} {r['fanout_cold_per_s']:>8.0f} {r['chain_per_s']:>10.0f}"
        )
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
