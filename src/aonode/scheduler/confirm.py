"""The confirmation modes, decided in one place: which stage answers the client.

An assignment passes up to three stages, each a future on the server's entry:

* ``signed`` — the actor fixed slot, hash chain and timestamps, and the
  commitment exists (in memory only);
* ``durable`` — the store's group commit made it durable;
* ``uploaded`` — the upload target accepted it (``upload.py``).

A mode names the stage at which a client is told "scheduled" (invariant 3 of
DESIGN.md): ``aggressive`` at ``signed``, ``local_confirmation`` at
``durable``, ``remote_confirmation`` at ``uploaded``.  HyperBEAM's
``dev_scheduler_server`` calls one ``maybe_inform_recipient(Mode, …)`` at each
stage; here :class:`Confirmation` is that one decision, and every answer goes
through it:

* :meth:`Confirmation.answer` — a new assignment, or a re-post the actor
  still holds in memory: the reply follows the mode's stage (when that stage
  is ``durable``, the server completes a new assignment's reply itself as it
  settles the slot, with :func:`complete`: the same answer, one callback
  sooner);
* :meth:`Confirmation.stored` — a re-post found durable in the store: answered
  at once, unless the mode's stage (``uploaded``) may still be ahead;
* :meth:`Confirmation.wait` — how the caller awaits the reply: at the upload
  stage a missed abort time becomes a clear :class:`UploadTimeout`.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from typing import Protocol, TypeVar

from aonode.config import Mode
from aonode.errors import UploadTimeout
from aonode.scheduler.assignment import Assignment
from aonode.scheduler.upload import Uploader

T = TypeVar("T")


class Stage(enum.Enum):
    SIGNED = "signed"
    DURABLE = "durable"
    UPLOADED = "uploaded"


def stage_of(mode: Mode, *, uploading: bool) -> Stage:
    """The stage at which ``mode`` answers (``uploading``: an upload target is set)."""
    if mode is Mode.AGGRESSIVE:
        return Stage.SIGNED
    if mode is Mode.REMOTE_CONFIRMATION and uploading:
        return Stage.UPLOADED
    return Stage.DURABLE


class Staged(Protocol):
    """An assignment on its way: one future per stage (the server's entry)."""

    signed: asyncio.Future[Assignment]
    durable: asyncio.Future[Assignment]
    uploaded: asyncio.Future[Assignment]


def complete(source: asyncio.Future[T], target: asyncio.Future[T]) -> None:
    """Complete ``target`` like the done ``source`` (unless the caller gave up on it)."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def relay(source: asyncio.Future[T], target: asyncio.Future[T]) -> None:
    """Complete ``target`` like ``source`` once it is done (see :func:`complete`)."""
    source.add_done_callback(functools.partial(complete, target=target))


class Confirmation:
    """One server's mode, applied at every point a client is answered."""

    def __init__(self, mode: Mode, uploads: Uploader | None = None) -> None:
        self.mode = mode
        self.uploads = uploads
        self.stage = stage_of(mode, uploading=uploads is not None)

    def reached(self, entry: Staged) -> asyncio.Future[Assignment]:
        """The future of ``entry`` that completes at this mode's stage."""
        if self.stage is Stage.SIGNED:
            return entry.signed
        if self.stage is Stage.UPLOADED:
            return entry.uploaded
        return entry.durable

    def answer(self, entry: Staged, reply: asyncio.Future[Assignment]) -> None:
        """Complete ``reply`` when ``entry`` reaches the mode's stage."""
        relay(self.reached(entry), reply)

    async def wait(
        self, reply: asyncio.Future[Assignment], *, deadline: float, process: str, message: str
    ) -> Assignment:
        """The client's answer.  At the upload stage the wait ends at ``deadline``."""
        if self.stage is not Stage.UPLOADED:
            return await reply
        assert self.uploads is not None
        return await confirmed(self.uploads, reply, deadline, process, message)

    async def stored(
        self, assignment: Assignment, *, deadline: float, process: str, message: str
    ) -> Assignment:
        """A re-post of a durable ``assignment``: answered once the mode's stage is reached.

        Durable already satisfies ``aggressive`` and ``local_confirmation``;
        ``remote_confirmation`` waits until the upload target has the slot.
        """
        if self.stage is Stage.UPLOADED:
            assert self.uploads is not None
            accepted = self.uploads.wait(process, assignment.slot)
            await confirmed(self.uploads, accepted, deadline, process, message)
        return assignment

    @property
    def waits_for_upload(self) -> bool:
        """Whether a durable entry's ``uploaded`` stage is tracked (a reply waits on it)."""
        return self.stage is Stage.UPLOADED


async def confirmed(
    uploader: Uploader, reply: asyncio.Future[T], deadline: float, process: str, message: str
) -> T:
    """``reply`` (a remote_confirmation answer), or :class:`UploadTimeout` at ``deadline``.

    On timeout the reply is cancelled: a request not yet assigned never will
    be (the scheduler skips cancelled requests), and an assigned one stays in
    the local schedule and in the upload backlog.
    """
    remaining = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(reply, max(remaining, 0.0))
    except TimeoutError:
        stored = await uploader.store.by_message(process, message)
        if stored is not None:
            where = (
                f"it is slot {stored.assignment.slot} of the local schedule (durable) and "
                "is uploaded in the background"
            )
        else:
            where = "it is not in the local schedule (not assigned in time, or still being written)"
        raise UploadTimeout(
            f"the upload target {uploader.target.url} did not accept message {message} "
            f"before the abort time; {where}"
            + (f"; last upload error: {uploader.last_error}" if uploader.last_error else "")
        ) from None
