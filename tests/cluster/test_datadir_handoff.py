"""The supervisor's data-directory lock, adopted by its workers (datadir.DataDirLock.adopt)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aonode.datadir import LOCK_NAME, DataDirLock
from aonode.errors import ConfigError, DataDirLocked


def test_a_worker_adopts_the_supervisors_lock(tmp_path: Path) -> None:
    supervisor = DataDirLock(tmp_path)
    supervisor.acquire()
    assert supervisor.fd is not None
    inherited = os.dup(supervisor.fd)  # what a worker gets through pass_fds
    worker = DataDirLock(tmp_path)
    worker.adopt(inherited)
    assert worker.held
    with pytest.raises(DataDirLocked) as info:  # a second node is still refused
        DataDirLock(tmp_path).acquire()
    assert info.value.pid == os.getpid()
    worker.release()  # a worker stopping leaves the supervisor's lock in place
    with pytest.raises(DataDirLocked):
        DataDirLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    os.close(inherited)
    supervisor.release()
    other = DataDirLock(tmp_path)
    other.acquire()  # free once the supervisor let go
    other.release()


def test_adopting_needs_the_locked_open_file(tmp_path: Path) -> None:
    supervisor = DataDirLock(tmp_path)
    supervisor.acquire()
    try:
        # another open of the same file does not share the lock
        fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR)
        try:
            with pytest.raises(DataDirLocked):
                DataDirLock(tmp_path).adopt(fd)
        finally:
            os.close(fd)
        # a descriptor of some other file is refused outright
        stray = tmp_path / "other"
        stray.write_text("x")
        fd = os.open(stray, os.O_RDONLY)
        try:
            with pytest.raises(ConfigError):
                DataDirLock(tmp_path).adopt(fd)
        finally:
            os.close(fd)
    finally:
        supervisor.release()
