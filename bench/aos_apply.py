"""CPU per message of the built-in aos on its own (no worker, no store, no HTTP).

Applies N handler messages (``Action = Inc``: a handler that counts and
replies) to one ``lua@5.3a`` runtime with the built-in aos and prints the CPU
µs per message (``time.process_time``, so other load on the machine does not
count), next to the same runtime's bare ``Eval('return 1')`` in the same run.

    .venv/bin/python bench/aos_apply.py [--messages 3000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from aonode.process.runtime.base import Limits
from aonode.process.runtime.lua import LuaRuntime

PID = "P" * 43
OWNER = "O" * 43
PROCESS_TAGS = [("Type", "Process"), ("Module", "ModuleId")]
ENV: dict[str, Any] = {
    "Process": {
        "Id": PID,
        "Owner": OWNER,
        "Module": "ModuleId",
        "Tags": [{"name": n, "value": v} for n, v in PROCESS_TAGS],
    }
}
HANDLER = (
    "N = 0\nHandlers.add('Inc', Handlers.utils.hasMatchingTag('Action', 'Inc'),"
    " function(m) N = N + 1; m.reply({ Data = tostring(N) }) end)"
)


def message(slot: int, data: str, tags: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "Id": PID if slot == 0 else f"Message{slot:036d}",
        "Owner": OWNER,
        "From": OWNER,
        "Target": PID,
        "Anchor": "",
        "Data": data,
        "Tags": [{"name": n, "value": v} for n, v in tags],
        "Timestamp": 1_700_000_000_000 + slot * 1000,
        "Block-Height": 1_000 + slot,
        "Epoch": 0,
        "Nonce": slot,
        "Hash-Chain": f"chain-{slot}",
        "Cron": False,
        "Module": "ModuleId",
    }


def cpu_per_message(
    rt: LuaRuntime, first: int, count: int, data: str, tags: list[tuple[str, str]]
) -> float:
    started = time.process_time()
    for slot in range(first, first + count):
        result = rt.apply(message(slot, data, tags), ENV)
        assert result.error is None, result.error
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    n = parser.parse_args().messages
    rt = LuaRuntime(None, limits=Limits(), checkpoint_every=1000)
    try:
        assert rt.boot(message(0, "", PROCESS_TAGS), ENV).error is None
        assert rt.apply(message(1, HANDLER, [("Action", "Eval")]), ENV).error is None
        evals = cpu_per_message(rt, 2, n, "return 1", [("Action", "Eval")])
        handled = cpu_per_message(rt, 2 + n, n, "x", [("Action", "Inc"), ("X-Extra", "y")])
    finally:
        rt.close()
    for what, us in (("Eval 'return 1'", evals), ("handler that replies", handled)):
        print(f"built-in aos, {what:<24} {us:7.0f} µs CPU/message  ({1e6 / us:,.0f}/s)")


if __name__ == "__main__":
    main()
