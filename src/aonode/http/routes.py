"""The one route table of the node's HTTP surface: (methods, path pattern) → handler.

Every surface is declared here, native (HyperBEAM's device paths), legacy SU/CU,
the gateway's GraphQL, the operator's dashboard and ``~cron@1.0``; the pattern
syntax and HyperBEAM's path forms are in :mod:`aonode.http.routing`.  A path no
pattern fits is a 404; a pattern that fits with another method is a 405 whose
``Allow`` lists the methods it has.  The first route that fits wins: the
legacy surface only takes what the device paths leave free (a bare id, the root
and fixed words), so no path is served by both.
"""

from __future__ import annotations

from aonode.http import cron_routes, dashboard, native, process_routes
from aonode.http.legacy import cu, graphql, su
from aonode.http.request import Request
from aonode.http.responses import Response, Surface
from aonode.http.routing import Match, Route
from aonode.services import Services

GET, POST, BOTH = ("GET",), ("POST",), ("GET", "POST")
LEGACY, GRAPHQL = Surface.LEGACY, Surface.GRAPHQL


async def root(svc: Services, request: Request, m: Match) -> Response:
    """``GET /``: a browser gets the dashboard, an AO client the legacy SU's info."""
    if dashboard.wants_html(request.headers.get("accept", "")):
        return dashboard.page()
    return await su.info(svc, request, m)


def _scheduler(device: str) -> tuple[Route, ...]:
    """``~scheduler@1.0``'s keys (``~process@1.0`` answers them too), with and without a pid."""
    heads = (f"/~{device}", f"/{{pid}}~{device}")
    return (
        *(Route(GET, f"{h}/schedule", native.get_schedule) for h in heads),
        *(Route(POST, f"{h}/schedule", native.post_schedule) for h in heads),
        *(Route(GET, f"{h}/slot", native.get_slot) for h in heads),
        *(Route(BOTH, f"{h}/slot/current", native.slot_current) for h in heads),  # aoconnect POSTs
        Route(GET, f"/~{device}/location", native.get_location),
        Route(POST, f"/~{device}/location", native.post_location),
        Route(GET, f"/~{device}/status", native.status),
    )


ROUTES: tuple[Route, ...] = (
    # the legacy Scheduler Unit, Compute Unit and gateway (legacy/)
    Route(GET, "/", root, LEGACY),
    Route(POST, "/", su.post, LEGACY),
    Route(GET, "/timestamp", su.timestamp, LEGACY),
    Route(POST, "/dry-run", su.dryrun, LEGACY),
    Route(POST, "/graphql", graphql.handle, GRAPHQL),
    Route(GET, "/processes/{pid:any}", su.process, LEGACY),
    Route(GET, "/result/{pid:any}", su.result, LEGACY),
    Route(GET, "/results/{pid:any}", cu.results, LEGACY),
    Route(GET, "/state/{pid:any}", cu.state, LEGACY),
    Route(GET, "/cron/{pid:any}", cu.cron, LEGACY),
    Route(GET, "/{pid}/latest", su.latest, LEGACY),
    Route(GET, "/{id}", su.read, LEGACY),
    # the operator's
    Route(GET, "/metrics", dashboard.metrics),
    Route(GET, "/~dashboard", dashboard.dashboard),
    Route(GET, "/~dashboard/state", dashboard.state_route),
    # ~process@1.0
    Route(GET, "/{pid}~process@1.0/snapshot", process_routes.snapshot),
    Route(GET, "/{pid}~process@1.0/now/{*sub}", process_routes.now),
    Route(BOTH, "/{pid}~process@1.0/compute/{*sub}", process_routes.compute),
    # ~push@1.0
    Route(POST, "/{pid}~process@1.0/push", native.push),
    Route(POST, "/~process@1.0/push", native.push),
    Route(POST, "/push", native.push),  # aoconnect's spawn
    # ~scheduler@1.0
    *_scheduler("scheduler@1.0"),
    *_scheduler("process@1.0"),
    Route(GET, "/schedule", native.get_schedule),
    Route(POST, "/schedule", native.post_schedule),
    # ~meta@1.0, ~message@1.0, ~cron@1.0
    Route(GET, "/~meta@1.0", native.meta),
    Route(GET, "/~meta@1.0/info", native.meta),
    Route(GET, "/~meta@1.0/info/address", native.meta_address),
    Route(POST, "/~message@1.0/store", native.store_message),
    Route(GET, "/~message@1.0/{id}", native.get_message),
    Route(POST, "/~cron@1.0/once", cron_routes.once),
    Route(POST, "/~cron@1.0/every", cron_routes.every),
    Route(POST, "/~cron@1.0/stop", cron_routes.stop),
    Route(GET, "/~cron@1.0/tasks", cron_routes.tasks),
)
