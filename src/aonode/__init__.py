"""aonode: an AO process-and-scheduling node.

The public façade is deliberately small: :class:`Node`, :class:`NodeConfig`
and the exception tree.  Everything else is an implementation module.
"""

from aonode import errors
from aonode.config import Mode, NodeConfig
from aonode.node import Node

__all__ = ["Mode", "Node", "NodeConfig", "errors"]
__version__ = "0.1.0"
