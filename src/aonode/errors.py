"""The one exception tree of aonode.

Every error the node raises on purpose derives from :class:`AONodeError` and
carries a stable kebab-case ``code`` that clients can branch on.  HTTP
statuses are *not* decided here: ``aonode.http.errors`` maps these classes to
statuses at the boundary, in one table.

::

    AONodeError
     ├── InputError                 the caller sent something we cannot accept
     │    ├── InvalidMessage        malformed data item / JSON / tags
     │    ├── InvalidSignature      a signature that does not verify
     │    ├── UnsupportedSignature  a signature type we do not know
     │    ├── BadParameter          a malformed query or path parameter
     │    ├── PayloadTooLarge       body over the configured limit
     │    ├── UnsupportedMediaType  a body in a form the route does not take
     │    ├── HeadersTooLarge       a header block over the configured cap (431)
     │    └── RequestTimeout        a body that stopped arriving (408)
     ├── AccessDenied               authenticated, but not allowed to do this (403)
     │    └── Unauthenticated       no signature and no operator token (401)
     ├── NotFound                   unknown process, slot, message, route
     ├── MethodNotAllowed           known route, wrong HTTP method
     ├── Conflict                   request is valid but clashes with state
     │    └── NotOurProcess         the process names no scheduler this node holds
     ├── NotOwner                   another node holds the process's lease (307 to it)
     ├── Overloaded                 a process queue is full; retry later
     │    └── TooManyTasks          a cron task cap is reached (429)
     ├── QuotaExceeded              a signer or client over its quota (429 + Retry-After)
     ├── Expired                    the request's abort time passed before assignment
     ├── UploadTimeout              remote_confirmation: the upload target did not accept in time
     ├── StoreError                 the storage backend failed
     │    ├── IntegrityError        duplicate (process, slot)/(process, message) or a gap
     │    ├── StoreUnavailable      the database cannot be reached now (503, retry)
     │    └── LeaseLost             fenced out: the process's lease is another node's now
     ├── SchedulerError             scheduler lifecycle misuse
     │    └── AlreadyRunning        a second server for one process
     ├── RemoteError                another node failed a push delivery
     │    ├── Unreachable           no answer, a timeout or a 5xx: retried, then reported
     │    └── RemoteRefused         a 4xx answer: the delivery will not succeed as is
     ├── ClientError                the command line's request to a node failed (aonode.client)
     │    └── BadUsage              a command line argument that cannot be right (exit 2)
     └── ConfigError                invalid node configuration (start-up only)
          └── DataDirLocked         another node holds the data directory
"""

from __future__ import annotations


class AONodeError(Exception):
    """Base of every deliberate aonode error."""

    code: str = "internal-error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InputError(AONodeError):
    code = "bad-request"


class InvalidMessage(InputError):
    code = "invalid-message"


class InvalidSignature(InputError):
    code = "invalid-signature"


class UnsupportedSignature(InputError):
    code = "unsupported-signature-type"


class BadParameter(InputError):
    code = "bad-parameter"


class PayloadTooLarge(InputError):
    code = "payload-too-large"


class UnsupportedMediaType(InputError):
    code = "unsupported-media-type"


class AccessDenied(AONodeError):
    """The caller is known (a signer or the operator) but may not do this."""

    code = "forbidden"


class Unauthenticated(AccessDenied):
    """The request proves no identity: no signature and no operator token."""

    code = "unauthenticated"


class NotFound(AONodeError):
    code = "not-found"


class MethodNotAllowed(AONodeError):
    code = "method-not-allowed"

    def __init__(self, message: str, *, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.allow = allow


class Conflict(AONodeError):
    code = "conflict"


class NotOurProcess(Conflict):
    code = "not-our-process"


class NotOwner(AONodeError):
    """Another node owns the process now (its lease); ``location`` is that node's URL."""

    code = "not-owner"

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(message)
        self.location = location


class Overloaded(AONodeError):
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyTasks(Overloaded):
    """A cron cap (per owner or per node) is reached; ``retry_after`` in seconds."""

    code = "too-many-tasks"


class Expired(AONodeError):
    code = "request-expired"


class UploadTimeout(AONodeError):
    """The abort time passed before the upload target accepted the assignment.

    The assignment (if it was made) stays in the local schedule and is
    uploaded in the background: nothing is lost, the client only lacks the
    remote confirmation.
    """

    code = "upload-timeout"


class StoreError(AONodeError):
    code = "store-error"


class IntegrityError(StoreError):
    code = "integrity-error"


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (down, restarting, network); retry later."""

    code = "store-unavailable"


class LeaseLost(StoreError):
    """An append refused because this node no longer holds the process's lease."""

    code = "lease-lost"


class SchedulerError(AONodeError):
    code = "scheduler-error"


class AlreadyRunning(SchedulerError):
    code = "already-running"


class RemoteError(AONodeError):
    """A push delivery to another node failed.

    ``status`` is the remote's answer (or 502 / 504 when there was none) and
    ``attempts`` how many times it was tried: both go into the push tree.
    """

    code = "remote-error"

    def __init__(self, message: str, *, status: int, node: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.node = node
        self.attempts = attempts


class Unreachable(RemoteError):
    code = "remote-unreachable"


class RemoteRefused(RemoteError):
    code = "remote-refused"


class ClientError(AONodeError):
    """A client command failed: the node is down or refused, a bad URL, a bad file.

    ``message`` is one line meant for a person (the CLI prints it as is).
    """

    code = "client-error"


class BadUsage(ClientError):
    """A command-line argument that is malformed (a tag without ``=``, a bad id)."""

    code = "bad-usage"


class ConfigError(AONodeError):
    code = "config-error"


class DataDirLocked(ConfigError):
    """Another node (``pid``) holds the data directory's lock: two nodes would diverge."""

    code = "data-dir-locked"

    def __init__(self, message: str, *, path: str, pid: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


class QuotaExceeded(AONodeError):
    """A signer or client went over one of its quotas (429 + ``Retry-After``)."""

    code = "quota-exceeded"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HeadersTooLarge(InputError):
    """The request's header block is over the configured cap (431)."""

    code = "headers-too-large"


class RequestTimeout(InputError):
    """The client stopped sending its body (408; the connection is closed)."""

    code = "request-timeout"
