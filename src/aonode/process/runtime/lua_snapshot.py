"""Deterministic snapshots of a Lua 5.3 process state (the Python side).

The work is done by ``lua_snapshot.lua`` inside the process's own Lua state (lupa
embeds C Lua, which cannot image its VM): it serialises the value graph under
a root table in a canonical order, so two nodes that applied the same schedule
write the same bytes.  The format, the ordering rule and what cannot be
snapshotted are documented at the top of ``lua_snapshot.lua``.

This module only loads that Lua module into a runtime (once per Lua state: it
is kept in the Lua registry) and moves bytes across the lupa boundary.  Lua
errors (an unknown C function, userdata or coroutine in the state; corrupt
data) surface as ``lupa.LuaError`` with a message naming the path to the
culprit.  Compression is the caller's business.

lupa has no type stubs; Lua objects are ``Any`` here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from typing import Any

# bytes: a runtime with encoding=None passes str objects to Lua as userdata
_REGISTRY_KEY = b"aonode.snapshot"
_CHUNK_NAME = b"=aonode/process/runtime/snapshot.lua"

# Load the module into the state once; keep it (and a dump that returns
# latin-1 code points as UTF-8, for runtimes that decode Lua strings) in the
# registry, where sandboxed code cannot reach it.
_INSTALL = """
local src, chunkname, key = ...
local reg = debug.getregistry()
local m = reg[key]
if m == nil then
  m = assert(load(src, chunkname, "t"))()
  local dump, gsub, map = m.dump, string.gsub, {}
  for b = 128, 255 do map[string.char(b)] = utf8.char(b) end
  reg[key .. ".utf8"] = function(root, known)
    return (gsub(dump(root, known), "[\\128-\\255]", map))
  end
  reg[key] = m
end
return m, reg[key .. ".utf8"]
"""

_PROBE = bytes(range(256))


@functools.cache
def _source() -> bytes:
    return resources.files("aonode.process.runtime").joinpath("lua_snapshot.lua").read_bytes()


def _install(lua: Any) -> tuple[Any, Any]:
    module, dump_utf8 = lua.execute(_INSTALL, _source(), _CHUNK_NAME, _REGISTRY_KEY)
    return module, dump_utf8


def load_snapshot_module(lua: Any) -> Any:
    """The ``{dump, load}`` table of ``lua_snapshot.lua`` inside ``lua``.

    ``lua`` is a ``lupa.lua53.LuaRuntime`` (its privileged side: the module uses
    ``debug`` and binary ``load``).  Loaded once per Lua state.
    """
    return _install(lua)[0]


def _lua_table(lua: Any, known: Any) -> Any:
    if isinstance(known, Mapping):
        # names as bytes: a runtime with encoding=None would pass str as userdata
        return lua.table_from(
            {k.encode() if isinstance(k, str) else k: v for k, v in known.items()}
        )
    return known


def _bytes_mode(lua: Any) -> str:
    """How Lua strings reach Python in this runtime: raw, latin-1 or utf-8.

    A runtime created with ``encoding=None`` hands over bytes; one with a
    text encoding decodes them, which binary data would not survive unless it
    is first re-encoded in Lua.
    """
    try:
        probe = lua.execute("return ...", _PROBE)
    except UnicodeDecodeError:
        return "utf-8"
    if isinstance(probe, bytes) and probe == _PROBE:
        return "raw"
    if isinstance(probe, str) and probe.encode("latin-1", errors="replace") == _PROBE:
        return "latin-1"
    raise TypeError("LuaRuntime string encoding is not supported for snapshots")


def dump(lua: Any, root: Any, known: Any) -> bytes:
    """Serialise everything reachable from ``root`` (a Lua table) to bytes.

    ``known`` (a Lua table or a mapping of name → Lua object) names the
    objects the runtime provides; they are written by name.
    """
    module, dump_utf8 = _install(lua)
    mode = _bytes_mode(lua)
    dump_fn = dump_utf8 if mode == "utf-8" else module.dump
    data = dump_fn(root, _lua_table(lua, known))
    if mode != "raw":
        data = data.encode("latin-1") if isinstance(data, str) else None
    if not isinstance(data, bytes):
        raise TypeError("snapshot dump did not come back as a string")
    return data


def load(lua: Any, data: bytes, known: Any, env: Any = None) -> Any:
    """Rebuild the graph of ``data`` in ``lua``; returns its root.

    With ``env`` (a Lua table) the root is restored into ``env``, which is
    cleared first: the restored functions' ``_ENV`` (and ``_G``) are ``env``.
    ``known`` must hold every name the snapshot refers to.
    """
    module, _ = _install(lua)
    return module.load(bytes(data), _lua_table(lua, known), env)
