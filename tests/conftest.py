"""Session-wide test set-up: city packs are built from data/ into a per-session folder."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import citywatch.city.pack as pack_module  # its _CACHE holds the packs read


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
