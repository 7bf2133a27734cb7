"""The client side of the command line: talk to a running node.

``node``     an HTTP client for a node's routes whose every failure is a one-line
             :class:`aonode.errors.ClientError`
``sign``     wallets and the ANS-104 items the commands post (messages, processes,
             modules, cron requests)
``aos``      the pinned real hyper-aos and aos WASM, fetched from npm and checked
``commands`` the typer commands (``spawn``, ``eval``, ``module``, ``cron``, …)
             that :mod:`aonode.ops.cli` wires into ``aonode``
"""
