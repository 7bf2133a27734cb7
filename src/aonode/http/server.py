"""Running the ASGI app on granian, embedded in the node's own event loop.

granian's embed mode keeps one asyncio loop for HTTP handlers and scheduler
actors (no cross-process hand-off on the request path) while its Rust I/O
threads parse HTTP off the GIL; bench/limits.py measures the bare echo rate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
from collections.abc import Callable

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

from aonode.http.app import App
from aonode.http.inprocess import asgi_request
from aonode.logs import lifecycle
from aonode.node import Node
from aonode.scheduler import location
from aonode.services import Services

log = logging.getLogger("aonode.http")


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on.

    granian binds with SO_REUSEPORT, so a second node started on a busy port
    would silently share it and receive half of the first one's traffic.  A
    plain bind (no SO_REUSEPORT) fails when anything listens there already.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))


def free_port(host: str) -> int:
    """A port that was free a moment ago (for ``--port 0``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http1_settings(max_header: int, header_timeout: float) -> HTTP1Settings:
    """granian's HTTP/1.1 limits that guard the connection before the app sees it.

    ``header_read_timeout`` closes a connection whose request head has not fully
    arrived in time (slowloris).  The header-block cap itself is enforced by the app
    (a JSON 431); granian's read buffer is only kept well above it so such requests
    reach the app, while a head beyond the buffer gets granian's own bare 431."""
    buffer = max(HTTP1Settings.max_buffer_size, 4 * max_header)
    return HTTP1Settings(
        header_read_timeout=max(1, round(header_timeout * 1000)), max_buffer_size=buffer
    )


async def serve(
    node: Node,
    *,
    on_ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    shared_port: bool = False,
    services: Services | None = None,
) -> None:
    """Serve ``node`` until ``stop`` is set (default: SIGTERM/SIGINT), then drain and close.

    ``shared_port``: one worker of a cluster (aonode.cluster), whose supervisor
    checked the port and whose siblings listen on it too (SO_REUSEPORT);
    ``services``: what the routes use instead of ``node.services()`` (a cluster
    worker's, whose scheduling forwards to the process's owner).
    """
    config = node.config
    port = config.port or free_port(config.host)
    if not shared_port:
        ensure_port_free(config.host, port)
    app = App(services if services is not None else node.services())
    await node.start(dispatch=functools.partial(asgi_request, app))  # cron fires through it
    server = Server(
        app,
        address=config.host,
        port=port,
        interface=Interfaces.ASGI,
        log_enabled=False,
        backlog=1024,
        http=HTTPModes.http1,
        http1_settings=http1_settings(config.max_header, config.header_timeout),
    )
    if stop is None:  # a CLI run: the signals are ours
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve())
    try:
        if not await _wait_listening(config.host, port, serving):
            await serving  # re-raises the bind error
            return
        url = config.advertise_url or f"http://{config.host}:{port}"
        await location.register_own(node.store, node.wallets[0], url)
        if on_ready is not None:
            on_ready(f"http://{config.host}:{port}")
        lifecycle.info(
            "node started",
            extra={
                "url": f"http://{config.host}:{port}",
                "address": node.address,
                "mode": config.mode.value,
                "store": node.store.url,
            },
        )
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        server.stop()  # type: ignore[no-untyped-call]
        try:
            await serving
        except Exception:  # pragma: no cover
            log.exception("http server ended with an error")
        await node.stop()
        lifecycle.info("node stopped", extra={"address": node.address})


async def _wait_listening(host: str, port: int, serving: asyncio.Task[None]) -> bool:
    """Wait until the listener accepts connections (granian gives no ready hook)."""
    for _ in range(500):
        if serving.done():
            return False
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False
