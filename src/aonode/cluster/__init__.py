"""Several worker OS processes behind one address (``aonode serve --workers N``).

One Python process holds one GIL, so a node schedules and computes on one core
however many the machine has.  A cluster is a supervisor (:mod:`.supervisor`)
that holds the data directory and starts N workers, each a full node answering
on the same host:port (SO_REUSEPORT).  Every AO process belongs to exactly one
worker (:func:`.shard.shard_of`); a request that lands elsewhere does its
process-independent work where it landed and sends only the use-case call to
the owner over a framed, batched channel (:mod:`.channel`).
"""
