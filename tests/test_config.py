"""Environment configuration of the node (``AONODE_*``)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from aonode.config import SETTINGS, NodeConfig, Setting, from_env, from_flags
from aonode.errors import ConfigError
from aonode.ops.cli import main


def test_process_cache_settings_come_from_the_environment() -> None:
    env = {
        "AONODE_SNAPSHOT_SLOTS": "250",
        "AONODE_SNAPSHOT_SECONDS": "7.5",
        "AONODE_WORKER_MAX_IDLE": "30",
        "AONODE_ASYNC_CACHE": "off",
        "AONODE_WASM_SNAPSHOT_SLOTS": "2000",
    }
    config = from_env(NodeConfig(), env)
    assert (config.snapshot_slots, config.snapshot_seconds) == (250, 7.5)
    assert (config.wasm_snapshot_slots, NodeConfig().wasm_snapshot_slots) == (2000, 1000)
    assert (config.worker_max_idle, config.async_cache) == (30.0, False)
    assert from_env(NodeConfig(), {}).async_cache is True
    assert from_env(NodeConfig(), {"AONODE_ASYNC_CACHE": "TRUE"}).async_cache is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AONODE_ASYNC_CACHE", "maybe"),
        ("AONODE_SNAPSHOT_SLOTS", "ten"),
        ("AONODE_WASM_SNAPSHOT_SLOTS", "many"),
        ("AONODE_SNAPSHOT_SECONDS", "soon"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        from_env(NodeConfig(), {name: value})


# A text each kind of setting accepts, and a value no default equals.
SAMPLES = {
    "<int>": "7",
    "<float>": "2.5",
    "<bool>": "off",
    "<path>": "/tmp/aonode-elsewhere",
    "<list[Path]>": "/tmp/a.json",
    "<list[str]>": "PID=http://127.0.0.1:9",
}
TEXTS = {
    "mode": "aggressive",
    "max_body": "2MiB",
    "lua_memory": "2MiB",
    "max_header": "2KiB",
    "operator_token": "secret-token",
}


def sample(setting: Setting) -> str:
    if setting.name in TEXTS:
        return TEXTS[setting.name]
    if setting.name.startswith("quota_") and setting.name != "quota_keys":
        return "5:1/s"
    return SAMPLES.get(setting.kind.metavar, "http://127.0.0.1:9")


def test_each_setting_is_read_alike_from_its_variable_and_its_flag() -> None:
    names = {f.name for f in fields(NodeConfig)}
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    for setting in SETTINGS:
        assert setting.name in names, setting.name
        text = sample(setting)
        from_variable = getattr(from_env(NodeConfig(), {setting.variable: text}), setting.name)
        assert from_variable != getattr(NodeConfig(), setting.name), setting.name
        if setting.option is not None:
            flagged = from_flags(
                NodeConfig(), {setting.name: [text] if setting.kind.split else text}
            )
            assert getattr(flagged, setting.name) == from_variable, setting.name


def test_repeatable_settings_split_their_variable_and_repeat_their_flag() -> None:
    env = {"AONODE_SCHEDULER_MAP": "A=http://h:1/, B=http://h:2", "AONODE_WALLET": "a.json"}
    config = from_env(NodeConfig(), env)
    assert config.scheduler_map == {"A": "http://h:1", "B": "http://h:2"}
    flagged = from_flags(NodeConfig(), {"scheduler_map": ["A=http://h:1/", "B=http://h:2"]})
    assert flagged.scheduler_map == config.scheduler_map
    assert from_flags(config, {"wallets": ["x.json", "y.json"], "host": None}).wallets == (
        Path("x.json"),
        Path("y.json"),
    )
    assert config.wallets == (Path("a.json"),)


def test_a_bad_flag_is_refused_by_its_flag() -> None:
    with pytest.raises(ConfigError, match="--port"):
        from_flags(NodeConfig(), {"port": "eighty"})
    with pytest.raises(ConfigError, match="AONODE_PORT"):
        from_env(NodeConfig(), {"AONODE_PORT": "eighty"})
    with pytest.raises(ConfigError, match="unknown mode"):
        from_flags(NodeConfig(), {"mode": "eventually"})


def test_serve_help_shows_every_flag_with_its_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["serve", "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for setting in SETTINGS:
        if setting.option is None:
            assert not any(setting.variable in line for line in lines), setting.name
            continue
        (line,) = [line for line in lines if f" --{setting.option} " in line]
        assert setting.help_line in line and setting.kind.metavar in line, line
