"""``patch@1.0``: a process's outbox messages with method ``PATCH`` are not sent;
their keys update the process's state, served beside its results."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aonode.process.runtime.base import Json, Results


def patched(results: Results, state: dict[str, Any]) -> Results:
    """``results`` without its PATCH messages (kept in ``patches``); ``state`` updated."""
    keep: list[Json] = []
    patches = list(results.patches)
    for out in results.outbox:
        (patches if _method(out) == "PATCH" else keep).append(out)
    for p in patches:
        state.update(_patch_keys(p))
    return replace(results, outbox=tuple(keep), patches=tuple(patches))


_NOT_STATE = {
    "method",
    "target",
    "data-protocol",
    "variant",
    "type",
    "reference",
    "anchor",
    "tags",
    "data",
}


def _method(out: Json) -> str:
    for key in ("method", "Method"):
        if isinstance(out.get(key), str):
            return str(out[key]).upper()
    for t in out.get("Tags") or []:
        if isinstance(t, dict) and str(t.get("name", "")).lower() == "method":
            return str(t.get("value", "")).upper()
    return ""


def _patch_keys(out: Json) -> dict[str, Any]:
    """The keys a PATCH message sets (lowercased, as HyperBEAM keys are)."""
    keys: dict[str, Any] = {}
    for t in out.get("Tags") or []:
        if isinstance(t, dict) and "name" in t:
            keys[str(t["name"]).lower()] = t.get("value")
    for k, v in out.items():
        if isinstance(v, str | int | float | bool) and k.lower() not in keys:
            keys[k.lower()] = v
    return {k: v for k, v in keys.items() if k not in _NOT_STATE}
