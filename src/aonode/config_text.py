"""Setting values from text (an ``AONODE_*`` variable or a ``serve`` flag).

Every parser takes ``where`` (the variable or flag the text came from) so that a
refusal names what the operator wrote, as one :class:`~aonode.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from aonode.errors import ConfigError

_SIZE_UNITS = {
    "kib": 1024,
    "kb": 1000,
    "k": 1024,
    "mib": 1024**2,
    "mb": 1000**2,
    "m": 1024**2,
    "gib": 1024**3,
    "gb": 1000**3,
    "g": 1024**3,
    "b": 1,
}


def check_node_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if not key or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"scheduler map entry {key}={url!r}: want KEY=http(s)://host:port")


def parse_scheduler_map(entries: Iterable[str]) -> dict[str, str]:
    """``["PID=http://h:1", "ADDRESS=http://h:2"]`` → a map (checked)."""
    mapping: dict[str, str] = {}
    for entry in entries:
        key, eq, url = entry.strip().partition("=")
        if not eq:
            raise ConfigError(f"scheduler map entry {entry!r}: want KEY=URL")
        check_node_url(key.strip(), url.strip())
        mapping[key.strip()] = url.strip().rstrip("/")
    return mapping


def parse_size(value: str) -> int:
    """``10MiB``, ``512k``, ``1048576`` → bytes."""
    text = value.strip().lower().replace(" ", "")
    number, factor = text, 1
    for unit, scale in _SIZE_UNITS.items():
        if text.endswith(unit):
            number, factor = text[: -len(unit)], scale
            break
    try:
        return int(float(number) * factor)
    except ValueError:
        raise ConfigError(f"not a size: {value!r} (e.g. 10MiB, 512k, 1048576)") from None


def parse_int(where: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{where} must be an integer, got {value!r}") from None


def parse_float(where: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{where} must be a number, got {value!r}") from None


def parse_bool(where: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where} must be true or false, got {value!r}")
