"""The upload tests (tests/scheduler/test_upload.py) on a node whose store is PostgreSQL.

There the store is shared and leased: a node uploads only the processes it
holds, and finds a process's backlog when it starts serving it.
"""

from tests.arlocal_fixtures import arlocal, arlocal_factory
from tests.scheduler.test_upload import (
    test_backlog_goes_up_in_bounded_batches_once_the_target_is_up,
    test_local_confirmation_uploads_in_the_background,
    test_remote_confirmation_replies_after_arlocal_holds_the_items,
)
from tests.store.test_postgres_node import live

__all__ = [
    "arlocal",
    "arlocal_factory",
    "live",
    "test_backlog_goes_up_in_bounded_batches_once_the_target_is_up",
    "test_local_confirmation_uploads_in_the_background",
    "test_remote_confirmation_replies_after_arlocal_holds_the_items",
]
