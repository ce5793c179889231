"""The API tests here run against the same real servers as tests/api (SQLite and PostgreSQL)."""

from tests.api.conftest import db_url, manhattan, pytest_generate_tests, server

__all__ = ["db_url", "manhattan", "pytest_generate_tests", "server"]
