"""The real PostgreSQL server fixtures (see tests/pg_fixture.py) for the store tests."""

from tests.pg_fixture import pg_server, pg_url

__all__ = ["pg_server", "pg_url"]
