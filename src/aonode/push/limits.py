"""The bounds of a push walk (a value shared by the walk and remote delivery)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PushLimits:
    """Bounds of one push walk, and of retrying remote deliveries."""

    max_depth: int = 32
    max_messages: int = 1000
    remote_attempts: int = 3  # per delivery, in a sync push
    retry_seconds: float = 0.1  # first backoff; doubles per attempt
    retry_max_seconds: float = 30.0  # longest backoff (sync retries, async job re-walks)
    remote_timeout: float = 60.0  # one remote push, its whole subtree included
