"""Errors → HTTP statuses, in one table, at the boundary only."""

from __future__ import annotations

from aonode import errors as e

# Most specific first: the first class an error is an instance of wins.
STATUS: tuple[tuple[type[e.AONodeError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.UnsupportedMediaType, 415),
    (e.HeadersTooLarge, 431),
    (e.RequestTimeout, 408),
    (e.InputError, 400),
    (e.Unauthenticated, 401),
    (e.AccessDenied, 403),
    (e.NotFound, 404),
    (e.MethodNotAllowed, 405),
    (e.Conflict, 409),
    (e.NotOwner, 307),
    (e.TooManyTasks, 429),
    (e.Overloaded, 503),
    (e.QuotaExceeded, 429),
    (e.Expired, 503),
    (e.UploadTimeout, 504),
    (e.RemoteError, 502),
    (e.LeaseLost, 503),
    (e.StoreUnavailable, 503),
    (e.StoreError, 500),
    (e.SchedulerError, 500),
    (e.ConfigError, 500),
)


def status_of(error: e.AONodeError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500
