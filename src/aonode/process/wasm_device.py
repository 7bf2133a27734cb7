"""WebAssembly processes: ``wasm-64@1.0`` (with ``wasi@1.0``, ``json-iface@1.0``) and
``genesis-wasm@1.0``, both running the compiled ``image`` the process names.

With ``json-iface@1.0`` the image is aos as AO's compute units run it: its
``handle(msg, env)`` is called with JSON; without it, exported functions are
called by name.  ``genesis-wasm@1.0`` (the legacy network's device) always
goes through json-iface, with the image named by ``module``; it also runs a
process that names no execution device when that process's ``Module`` is a
WASM binary (a legacy-network process).  At spawn an image must exist, be
WebAssembly, export ``handle`` where json-iface calls it, and start under this
node's limits.
"""

from __future__ import annotations

from aonode.errors import BadParameter, InvalidMessage
from aonode.message import Message
from aonode.process.devices import DeviceContext, ExecutionDevice, named, unsupported
from aonode.process.modules import image_id, media_type
from aonode.process.runtime import wasm_image
from aonode.process.runtime.base import Limits, Runtime
from aonode.process.runtime.wasm_image import Image
from aonode.process.worker import RuntimeFactory

WASM64 = "wasm-64@1.0"
WASI = "wasi@1.0"
JSON_IFACE = "json-iface@1.0"
GENESIS_WASM = "genesis-wasm@1.0"
WASM_STACK = frozenset({WASM64, WASI, JSON_IFACE})
_STACK_SUMMARY = f"a stack@1.0 of {WASI}, {JSON_IFACE}, {WASM64}"


async def image_of(process: Message, context: DeviceContext, *, json: bool) -> Image:
    """The compiled image; one json-iface calls must export ``handle``."""
    image = await context.modules.image(process)
    if json and not image.has_handle:
        raise BadParameter(
            f"image {image.id} exports no handle(msg, env) function, which json-iface@1.0 calls",
            code="image-without-handle",
        )
    return image


async def check_image(process: Message, context: DeviceContext, *, json: bool) -> None:
    if JSON_IFACE in named(process) and WASM64 not in named(process):
        raise unsupported([f"{JSON_IFACE} without {WASM64}"], _STACK_SUMMARY)
    if image_id(process) is None:
        raise InvalidMessage(
            "a WASM process names its image: tag Image (or Module) = the id of a message "
            "holding the WebAssembly module",
            code="missing-image",
        )
    image = await image_of(process, context, json=json)
    # An image that compiles may still not start under this node's limits (its initial
    # memory over the cap, an import it cannot satisfy at instantiation): found now, it
    # is a 400 at spawn instead of an error at every message.
    from aonode.process.runtime.wasm import WasmFailure

    limits = context.limits
    try:
        await context.run(lambda: make_wasm_runtime(image, limits, None, json_iface=json).close())
    except WasmFailure as exc:
        raise BadParameter(
            f"image {image.id} cannot start on this node: {exc}", code="image-cannot-start"
        ) from None


async def image_runtime(process: Message, context: DeviceContext, *, json: bool) -> RuntimeFactory:
    image = await image_of(process, context, json=json)
    limits = context.limits

    def factory(snapshot: bytes | None) -> Runtime:
        return make_wasm_runtime(image, limits, snapshot, json_iface=json)

    return factory


def _json_iface(process: Message) -> bool:
    """wasm-64@1.0 drives the image through json-iface only when the stack names it."""
    return JSON_IFACE in named(process)


async def check_wasm64(process: Message, context: DeviceContext) -> None:
    await check_image(process, context, json=_json_iface(process))


async def wasm64_runtime(process: Message, context: DeviceContext) -> RuntimeFactory:
    return await image_runtime(process, context, json=_json_iface(process))


async def check_genesis(process: Message, context: DeviceContext) -> None:
    await check_image(process, context, json=True)


async def genesis_runtime(process: Message, context: DeviceContext) -> RuntimeFactory:
    return await image_runtime(process, context, json=True)


def is_wasm_module(data: bytes, content_type: str) -> bool:
    """A legacy-network process's module: typed application/wasm, or untyped WASM bytes."""
    ctype = media_type(content_type)
    return ctype == "application/wasm" or (not ctype and wasm_image.is_wasm(data))


WASM64_DEVICE = ExecutionDevice(
    WASM64,
    runtime=wasm64_runtime,
    check=check_wasm64,
    stack=frozenset({WASI, JSON_IFACE}),
    summary=_STACK_SUMMARY,
    heavy_state=True,
)
GENESIS_WASM_DEVICE = ExecutionDevice(
    GENESIS_WASM,
    runtime=genesis_runtime,
    check=check_genesis,
    stack=WASM_STACK,
    claims=is_wasm_module,
    heavy_state=True,
)


def make_wasm_runtime(
    image: Image, limits: Limits, snapshot: bytes | None, *, json_iface: bool = True
) -> Runtime:
    """A process on its WASM image (wasi/json-iface/wasm-64), fresh or from a snapshot."""
    from aonode.process.runtime.wasm import WasmRuntime

    if snapshot is not None:
        return WasmRuntime.restore(image, snapshot, limits=limits, json_iface=json_iface)
    return WasmRuntime(image, limits=limits, json_iface=json_iface)
