"""``lua@5.3a``: a process in Lua 5.3, on the built-in aos module or its own modules.

With no ``module``, the process runs the node's built-in aos module.  With
modules, it runs them under HyperBEAM's Lua-device contract (e.g. hyper-aos);
each is loaded once in a throw-away VM at spawn, because one that fails to
load (a syntax error, ``require`` of a library the sandbox lacks) would
otherwise be accepted and then fail every message it is given a slot for.
"""

from __future__ import annotations

from aonode.errors import BadParameter
from aonode.message import Message
from aonode.process.devices import DeviceContext, ExecutionDevice
from aonode.process.modules import module_ids
from aonode.process.runtime.base import Limits, Runtime
from aonode.process.worker import RuntimeFactory

LUA = "lua@5.3a"


async def check_lua(process: Message, context: DeviceContext) -> None:
    """Every module the process names is found and loads (400 naming the one that does not)."""
    from aonode.process.runtime.hyperaos import ModuleLoadError, check_modules

    sources = await context.modules.sources(process)
    if sources is None:
        return  # the built-in aos module
    names = chunk_names(module_ids(process), sources)
    limits = context.limits
    try:
        await context.run(lambda: check_modules(sources, names, limits))
    except ModuleLoadError as exc:
        raise BadParameter(
            f"the Lua module {exc.module} does not load: {exc.reason}",
            code="module-load-failed",
        ) from None


async def lua_runtime(process: Message, context: DeviceContext) -> RuntimeFactory:
    sources = await context.modules.sources(process)
    names = chunk_names(module_ids(process), sources or [])
    limits = context.limits

    def factory(snapshot: bytes | None) -> Runtime:
        return make_runtime(sources, limits, snapshot, names=names)

    return factory


LUA_DEVICE = ExecutionDevice(LUA, runtime=lua_runtime, check=check_lua)


def chunk_names(ids: list[str], sources: list[str]) -> list[str]:
    """The name each module's Lua chunk gets (errors quote it): its id, or ``hyper-aos``.

    Error positions read ``<name>:<line>:``; naming a user's module "hyper-aos"
    would send them looking in the wrong file, so only hyper-aos (it names
    itself in its ``info``) keeps that name."""
    return [
        "hyper-aos" if _HYPER_AOS_MARK in src else mid
        for mid, src in zip(ids, sources, strict=False)
    ]


_HYPER_AOS_MARK = 'info = "hyper-aos"'


def make_runtime(
    sources: list[str] | None,
    limits: Limits,
    snapshot: bytes | None,
    *,
    names: list[str] | None = None,
) -> Runtime:
    """The runtime for a process: built-in aos, or the named module (hyper-aos contract)."""
    if sources is None:
        from aonode.process.runtime.lua import LuaRuntime

        if snapshot is not None:
            restored: Runtime = LuaRuntime.restore(snapshot, limits=limits)
            return restored
        fresh: Runtime = LuaRuntime(None, limits=limits)
        return fresh
    from aonode.process.runtime.hyperaos import HyperAOSRuntime

    if snapshot is not None:
        return HyperAOSRuntime.restore(snapshot, limits=limits)
    runtime: Runtime = HyperAOSRuntime(sources, limits=limits, names=names or ())
    return runtime
