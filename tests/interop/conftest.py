"""Drive the real npm clients in this directory from pytest.

Interop tests never skip: a missing ``node_modules`` means the environment
was not set up, and a silent skip would hide that the interop claims are
untested.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

INTEROP_DIR = Path(__file__).resolve().parent
SETUP_HINT = "run ./scripts/test (it installs the npm clients)"

RunNode = Callable[..., Any]


@pytest.fixture(scope="session")
def run_node() -> RunNode:
    """``run_node(script, payload)``: run ``node script`` here, JSON in on stdin, JSON out."""
    if not (INTEROP_DIR / "node_modules").is_dir():
        pytest.fail(f"tests/interop/node_modules is missing: {SETUP_HINT}")
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: {SETUP_HINT}")

    def run(script: str, payload: object = None, *, timeout: float = 120) -> Any:
        proc = subprocess.run(
            [node, script],
            cwd=INTEROP_DIR,
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"node {script} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')}"
            )
        return json.loads(proc.stdout)

    return run
