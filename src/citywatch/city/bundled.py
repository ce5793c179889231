"""The bundled city packs: their names, their build specs, and the folder each is built into.

A bundled pack is a build spec ``data/packs/NAME.toml`` (see :func:`citywatch.paths.data_dir`)
over real source files shipped with CityWatch.  :func:`load_pack` accepts such a name or a pack
folder; a named pack is built into :func:`citywatch.paths.packs_dir` on first use and read from
there afterwards, until its spec changes (the built folder records the spec's SHA-256).
:mod:`citywatch.city.build` turns a spec into a folder and :mod:`citywatch.city.pack` reads a
folder; this module is the only one that knows both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from citywatch.city.build import build_pack
from citywatch.city.pack import CityPack, read_pack
from citywatch.errors import CityWatchError, NotFoundError
from citywatch.paths import data_dir, packs_dir

__all__ = ["BUNDLED", "build_bundled", "bundled_spec", "load_pack"]


def _discover() -> dict[str, Path]:
    try:
        specs = sorted((data_dir() / "packs").glob("*.toml"))
    except CityWatchError:
        return {}
    return {spec.stem: spec for spec in specs}


#: Bundled packs: name -> build spec (every ``data/packs/*.toml``).
BUNDLED: dict[str, Path] = _discover()


#: File in a built bundled pack holding the SHA-256 of the spec it was built from.
_DIGEST = "bundled-spec.sha256"


def _digest(spec: Path) -> str:
    return hashlib.sha256(spec.read_bytes()).hexdigest()


def _is_current(folder: Path, spec: Path) -> bool:
    try:
        return (folder / _DIGEST).read_text(encoding="ascii") == _digest(spec)
    except OSError:
        return False


def bundled_spec(name: str) -> Path:
    """The build spec of bundled pack ``name``.

    Raises
    ------
    NotFoundError
        If no bundled pack has that name.
    """
    if name not in BUNDLED:
        raise NotFoundError(f"no bundled pack {name!r}; bundled: {', '.join(BUNDLED)}")
    return BUNDLED[name]


def build_bundled(name: str, out: Path | None = None) -> Path:
    """Build bundled pack ``name`` from its real data files into ``out``.

    Parameters
    ----------
    name : str
        A key of :data:`BUNDLED`.
    out : Path, optional
        Pack folder (default ``packs_dir() / name``).  It is written next to its final place
        and moved there when complete, so an interrupted build never leaves a half pack.

    Returns
    -------
    Path
        The pack folder.
    """
    spec = bundled_spec(name)
    out = out or packs_dir() / name
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.building-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        build_pack(spec, partial)
        (partial / _DIGEST).write_text(_digest(spec), encoding="ascii")
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


def load_pack(name_or_path: str | Path) -> CityPack:
    """Load a city pack by bundled name (built on first use) or folder path.

    Parameters
    ----------
    name_or_path : str or Path
        A bundled name such as ``"manhattan"`` or ``"shenzhen"``, or the path of a pack folder.

    Raises
    ------
    NotFoundError
        If there is no such pack.
    """
    candidate = Path(name_or_path)
    name = str(name_or_path)
    if not candidate.exists() and name in BUNDLED:
        candidate = packs_dir() / name
        if not _is_current(candidate, BUNDLED[name]):
            build_bundled(name, candidate)
    if not candidate.exists():
        raise NotFoundError(
            f"no city pack {name!r}: give a pack folder or one of {', '.join(BUNDLED)}"
        )
    return read_pack(candidate)
