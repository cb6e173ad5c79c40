"""A PostgreSQL server for the storage tests: one per session, a fresh database per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.tuning.postgres import create_database, postgres_server

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_port() -> Iterator[int]:
    with postgres_server() as port:
        yield port


@pytest.fixture
def postgres_url(postgres_port: int) -> str:
    return create_database(postgres_port, f"test{next(_names)}")
