"""The reply for a computed slot, as ``/{pid}/compute`` and ``/now`` serve it."""

from __future__ import annotations

from typing import Any

from aonode.process.runtime.base import Results


def results_doc(process: str, slot: int, results: Results) -> dict[str, Any]:
    """The reply for a computed slot; patch@1.0 state keys sit beside the results."""
    doc: dict[str, Any] = {"process": process, "slot": slot, "results": results.to_json()}
    state = results.extra.get("state")
    if isinstance(state, dict):
        for key, value in state.items():
            doc.setdefault(key, value)
    return doc
