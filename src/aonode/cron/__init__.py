"""``~cron@1.0``: timed requests the node sends to itself.

- :mod:`aonode.cron.task` — a task as a value: its parameters, owner, schedule
  and the signed firing it makes (no I/O);
- :mod:`aonode.cron.timer` — :class:`Cron`, the node's tasks (durable) and the
  one timer loop that fires them through a dispatch handed to it.
"""

from aonode.cron.timer import Cron, CronPolicy

__all__ = ["Cron", "CronPolicy"]
