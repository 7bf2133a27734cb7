"""Soak: N kill -9 restarts of a real ``aonode serve`` under concurrent load.

Drives ``tests/soak.py`` (the same code the suite runs with fewer rounds) and
prints its figures as JSON: rounds, messages sent and acknowledged, lost (must
be 0), 503 refusals, computes served during the load, the final schedule
length, and restart-to-ready times.  The final checks (every acknowledged
assignment at its slot, ``aonode verify``, state equal to the schedule's fold
and to a fresh node's replay from slot 0) raise if anything is wrong.

    .venv/bin/python bench/soak.py --rounds 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.soak import run_soak

from aonode import wallet as wallet_mod


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--max-acks", type=int, default=120, help="most acks before a kill")
    parser.add_argument("--seed", default="aonode-soak")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aonode-soak-") as tmp:
        report = asyncio.run(
            run_soak(
                Path(tmp) / "node",
                wallet_mod.generate("ed25519"),
                args.rounds,
                seed=args.seed,
                max_acks=args.max_acks,
                progress=True,
            )
        )
    print(json.dumps(report.as_dict()))
    return 0 if report.lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
