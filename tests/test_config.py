"""Environment configuration of the node (``AONODE_*``)."""

from __future__ import annotations

import pytest

from aonode.config import NodeConfig, from_env
from aonode.errors import ConfigError


def test_process_cache_settings_come_from_the_environment() -> None:
    env = {
        "AONODE_SNAPSHOT_SLOTS": "250",
        "AONODE_SNAPSHOT_SECONDS": "7.5",
        "AONODE_WORKER_MAX_IDLE": "30",
        "AONODE_ASYNC_CACHE": "off",
    }
    config = from_env(NodeConfig(), env)
    assert (config.snapshot_slots, config.snapshot_seconds) == (250, 7.5)
    assert (config.worker_max_idle, config.async_cache) == (30.0, False)
    assert from_env(NodeConfig(), {}).async_cache is True
    assert from_env(NodeConfig(), {"AONODE_ASYNC_CACHE": "TRUE"}).async_cache is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AONODE_ASYNC_CACHE", "maybe"),
        ("AONODE_SNAPSHOT_SLOTS", "ten"),
        ("AONODE_SNAPSHOT_SECONDS", "soon"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_env(NodeConfig(), {name: value})
