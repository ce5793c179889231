"""Where CityWatch reads its bundled data and writes its packs, caches and embedded database.

Two layouts, chosen by where the package runs from:

* **a source checkout** (``src/citywatch`` below a ``pyproject.toml``, including an editable
  install): bundled sources in ``data/``, built packs in ``packs/``, everything else (the
  embedded database, caches, rejected rows) in ``var/``, as the README describes;
* **an installed copy** (a wheel in site-packages): bundled sources ship inside the package as
  ``citywatch/_data``; packs, caches and the database go to the user data directory
  (platformdirs: ``~/.local/share/citywatch`` on Linux).  Nothing is written into the package.

``$CITYWATCH_HOME`` (or the ``--home`` option, which sets it) replaces ``var/`` or the user
data directory, and packs then live in ``HOME/packs``.  ``$CITYWATCH_PACKS`` and
``$CITYWATCH_CACHE`` override single folders.  This module imports only :mod:`citywatch.errors`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import platformdirs

from citywatch.errors import NotFoundError

__all__ = [
    "ENV_CACHE",
    "ENV_HOME",
    "ENV_PACKS",
    "cache_dir",
    "checkout",
    "data_dir",
    "default_db_path",
    "home",
    "packs_dir",
    "rejected_dir",
    "set_home",
]

#: Environment variable naming the folder for packs, caches and the embedded database.
ENV_HOME: Final = "CITYWATCH_HOME"
#: Environment variable naming the folder of built city packs.
ENV_PACKS: Final = "CITYWATCH_PACKS"
#: Environment variable naming the folder of caches (travel matrices).
ENV_CACHE: Final = "CITYWATCH_CACHE"

_PACKAGE: Final = Path(__file__).resolve().parent
#: Where a wheel carries the bundled source data (``data/`` of the checkout).
_PACKAGED_DATA: Final = _PACKAGE / "_data"


def checkout() -> Path | None:
    """The source checkout this package runs from, or ``None`` for an installed copy."""
    root = _PACKAGE.parents[1]
    if _PACKAGE.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def set_home(path: Path) -> None:
    """Use ``path`` as the CityWatch home for this process and the processes it starts."""
    os.environ[ENV_HOME] = str(path.expanduser().resolve())


def home() -> Path:
    """The folder for the embedded database, caches and rejected rows.

    ``$CITYWATCH_HOME`` if set; else ``var/`` of the checkout; else the user data directory.
    """
    explicit = os.environ.get(ENV_HOME)
    if explicit:
        return Path(explicit)
    root = checkout()
    if root is not None:
        return root / "var"
    return platformdirs.user_data_path("citywatch", appauthor=False)


def packs_dir() -> Path:
    """Where built city packs live: ``$CITYWATCH_PACKS``, else ``packs/`` of the checkout
    (unless ``$CITYWATCH_HOME`` is set), else ``HOME/packs``."""
    explicit = os.environ.get(ENV_PACKS)
    if explicit:
        return Path(explicit)
    root = checkout()
    if root is not None and not os.environ.get(ENV_HOME):
        return root / "packs"
    return home() / "packs"


def cache_dir() -> Path:
    """Where derived data is cached: ``$CITYWATCH_CACHE``, else ``HOME/cache``."""
    explicit = os.environ.get(ENV_CACHE)
    return Path(explicit) if explicit else home() / "cache"


def default_db_path() -> Path:
    """The embedded SQLite database used when no database URL is given."""
    return home() / "citywatch.db"


def rejected_dir() -> Path:
    """Where importers write rejected rows by default."""
    return home() / "rejected"


def data_dir() -> Path:
    """The bundled source data: ``data/`` of the checkout, or the copy inside the wheel."""
    if _PACKAGED_DATA.is_dir():
        return _PACKAGED_DATA
    root = checkout()
    if root is not None:
        return root / "data"
    raise NotFoundError(f"CityWatch's bundled data is missing (looked in {_PACKAGED_DATA})")
