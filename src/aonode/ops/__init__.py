"""Operating a node: the command line and the tools an operator runs beside it.

- :mod:`aonode.ops.cli` — ``aonode`` (serve, wallet, verify, export/import; the
  client commands live in :mod:`aonode.client`);
- :mod:`aonode.ops.verify` — offline verification of a schedule (chain,
  signatures, commitments) from a node URL, a data directory or a store URL;
- :mod:`aonode.ops.migrate` / :mod:`aonode.ops.migrate_cli` — export and import
  of a whole store as a dump stream;
- :mod:`aonode.ops.metrics` — Prometheus metrics, an instrument of the node.
"""
