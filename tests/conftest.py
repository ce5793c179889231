"""Session-wide test set-up: city packs are built from data/ into a per-session folder."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

import citywatch.city.pack as pack_module  # its _CACHE holds the packs read

if TYPE_CHECKING:
    from citywatch.routing import Router


@pytest.fixture(scope="session", autouse=True)
def _packs_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Each test session (and each xdist worker) builds the bundled packs into its own folder, so
    # parallel workers never race on the same files and a user's packs/ is never touched.
    old = os.environ.get("CITYWATCH_PACKS")
    os.environ["CITYWATCH_PACKS"] = str(tmp_path_factory.mktemp("packs"))
    pack_module._CACHE.clear()
    yield
    pack_module._CACHE.clear()
    if old is None:
        os.environ.pop("CITYWATCH_PACKS", None)
    else:
        os.environ["CITYWATCH_PACKS"] = old


@pytest.fixture(scope="session")
def bundled_router() -> Callable[[str], Router]:
    """The router of a bundled pack by name, built once per test session and shared by every
    module (the large packs cost a build and seconds of graph compilation each)."""
    from citywatch.city import load_pack
    from citywatch.routing import Router

    @functools.cache
    def router(name: str) -> Router:
        return Router.from_pack(load_pack(name))

    return router


@pytest.fixture(scope="session", autouse=True)
def _audit_home_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # The audit key and checkpoints of every test database live in a per-session folder
    # (checkpoints name their database), never in a user's var/audit.
    old = os.environ.get("CITYWATCH_AUDIT_HOME")
    os.environ["CITYWATCH_AUDIT_HOME"] = str(tmp_path_factory.mktemp("audit"))
    yield
    if old is None:
        os.environ.pop("CITYWATCH_AUDIT_HOME", None)
    else:
        os.environ["CITYWATCH_AUDIT_HOME"] = old
