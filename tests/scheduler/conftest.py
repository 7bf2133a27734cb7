"""Scheduler test fixtures: a real local Arweave node (arlocal)."""

from tests.arlocal_fixtures import arlocal, arlocal_factory

__all__ = ["arlocal", "arlocal_factory"]
