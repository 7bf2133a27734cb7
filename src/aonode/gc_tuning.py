"""The garbage collector's settings for a serving process (``serve`` and each worker).

With Python's default thresholds a full pass over the heap ran every few
hundred requests and set the p99 latency (24 ms against 6 ms at half load,
``bench/schedule.py``).  With (10,000, 10, 100) each middle-generation pass
scanned ~100k objects (the in-flight requests' among them) and took tens of
milliseconds: half-load p99 6.6-15 ms.  (3,000, 3, 100) keeps every pass short:
6.7-6.8 ms in three runs, at the same throughput.  Nothing in the node relies on
prompt cycle collection.
"""

from __future__ import annotations

import gc

THRESHOLDS = (3_000, 3, 100)


def tune() -> None:
    """Set :data:`THRESHOLDS`, and leave everything made so far (modules, wallets,
    configuration) out of every future pass."""
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()
