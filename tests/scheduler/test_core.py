"""The I/O-free scheduling core, driven directly by hypothesis.

A stateful machine feeds :class:`ScheduleState` message ids, blocks and wall
clock readings that may go backwards, and resumes it from any slot it gave
(as after a crash or a failed write).  A model written here from the seeds'
rules — not from the code under test — says what each header must be.
"""

from __future__ import annotations

import hashlib

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aonode.codec.b64 import b64url_encode
from aonode.scheduler.core import ScheduleState
from aonode.scheduler.hashchain import verify_chain
from aonode.scheduler.timestamp import BlockInfo

ids = st.binary(min_size=32, max_size=32)
blocks = st.builds(
    BlockInfo,
    height=st.integers(0, 2**40),
    hash=st.text("abcXYZ-_0123456789", min_size=1, max_size=43),
    timestamp=st.integers(0, 2**40),
)
clock = st.integers(0, 2**45)


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = ScheduleState("P")
        self.given: list[tuple[int, str, str, int]] = []  # slot, id, chain, timestamp
        self.floor = 0

    @rule(raw=ids, block=blocks, now=clock, path=st.sampled_from(["compute", "push", "x"]))
    def assign(self, raw: bytes, block: BlockInfo, now: int, path: str) -> None:
        mid = b64url_encode(raw)
        previous = b"" if not self.given else _unb64(self.given[-1][2])
        header = self.state.assign(mid, raw, path=path, block=block, now_ms=now)
        assert header.slot == len(self.given)
        assert header.message == mid and header.process == "P" and header.path == path
        assert header.hash_chain == b64url_encode(hashlib.sha256(previous + raw).digest())
        assert (header.block_height, header.block_hash, header.block_timestamp) == (
            block.height,
            block.hash,
            block.timestamp,
        )
        assert header.timestamp == max(now, self.floor)
        self.floor = header.timestamp
        self.given.append((header.slot, mid, header.hash_chain, header.timestamp))

    @precondition(lambda self: bool(self.given))
    @rule(data=st.data())
    def resume_from_durable(self, data: st.DataObject) -> None:
        """Only a prefix was stored: the state restarts after its last slot."""
        keep = data.draw(st.integers(0, len(self.given)))
        self.given = self.given[:keep]
        if keep == 0:
            self.state.resume(None)
        else:
            slot, _, chain, stamp = self.given[-1]
            self.state.resume(slot, chain, stamp)

    @rule(raw=ids, now=clock, stored=clock)
    def restart_with_clock_set_back(self, raw: bytes, now: int, stored: int) -> None:
        """A fresh state resumed from a stored slot stamped ``stored``: time goes on from there."""
        fresh = ScheduleState("P")
        fresh.resume(7, b64url_encode(raw), stored)
        header = fresh.assign("m", raw, path="compute", block=BlockInfo(0, "h", 0), now_ms=now)
        assert header.slot == 8 and header.timestamp == max(now, stored)

    @invariant()
    def position(self) -> None:
        assert self.state.current == len(self.given) - 1
        assert self.state.hash_chain == (self.given[-1][2] if self.given else "")

    @invariant()
    def chain_rederives(self) -> None:
        assert verify_chain((s, m, c) for s, m, c, _ in self.given) is None

    @invariant()
    def time_never_goes_back(self) -> None:
        stamps = [t for *_, t in self.given]
        assert stamps == sorted(stamps)


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


TestCore = CoreMachine.TestCase
