"""Incidents as a partitioned Parquet dataset, for data that outgrows memory.

``citywatch incidents export --parquet DIR`` writes canonical incidents into a Hive-partitioned
dataset, one folder per city and month of ``received_at`` (UTC)::

    DIR/city=manhattan/month=2024-01/part-<run>-00000.parquet

Every file holds the canonical columns with their types
(:data:`citywatch.incidents.record.COLUMNS`).
The rows are streamed from the store and written chunk by chunk, so an export never holds more
than one chunk in memory.  A city's partitions are written by one export: exporting a city that is
already in ``DIR`` is refused unless ``overwrite`` replaces it (appending would count its
incidents twice).  :func:`open_dataset` reads a dataset lazily with ``dask.dataframe``, only the
columns and the partitions (cities, months) a computation needs.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from citywatch.errors import DataError, NotFoundError, ValidationError
from citywatch.incidents.jurisdiction import PackLike, scope_to_pack
from citywatch.incidents.record import COLUMNS, coerce_frame

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = [
    "ANY_CITY",
    "ParquetExport",
    "dataset_cities",
    "month_key",
    "open_dataset",
    "write_dataset",
]

#: City partition of incidents exported without a city pack.
ANY_CITY = "all"
_CITY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass
class ParquetExport:
    """What :func:`write_dataset` wrote: rows and files per city, and what it left out."""

    out: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    months: set[str] = field(default_factory=set)
    dropped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "out": str(self.out),
            "rows": sum(self.rows.values()),
            "rows_by_city": dict(sorted(self.rows.items())),
            "files": self.files,
            "months": len(self.months),
            "left_out": self.dropped,
        }


def month_key(received_at: pd.Series) -> pd.Series:
    """The ``month`` partition (``YYYY-MM`` of the UTC time) of each timestamp."""
    month: pd.Series = received_at.dt.tz_convert("UTC").dt.strftime("%Y-%m")
    return month


def _check_city(name: str) -> str:
    if not _CITY.match(name):
        raise ValidationError(
            f"city name {name!r} cannot name a partition: use letters, digits, '_', '-', '.'",
            field="pack",
        )
    return name


def _prepare(out: Path, cities: Sequence[str], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValidationError(f"{out} exists and is not a folder", field="parquet")
    present = [c for c in cities if (out / f"city={c}").exists()]
    if present and not overwrite:
        raise ValidationError(
            f"{out} already holds the incidents of {', '.join(present)}: exporting them again "
            "would count them twice; give --overwrite to replace them",
            field="parquet",
        )
    for city in present:
        shutil.rmtree(out / f"city={city}")
    out.mkdir(parents=True, exist_ok=True)


def write_dataset(
    chunks: Iterable[pd.DataFrame],
    out: str | Path,
    *,
    packs: Sequence[tuple[str, PackLike]] = (),
    overwrite: bool = False,
) -> ParquetExport:
    """Write canonical incidents into a dataset partitioned by city and month.

    Parameters
    ----------
    chunks : iterable of pandas.DataFrame
        Canonical incidents, e.g. :func:`citywatch.incidents.storage.iter_incident_frames`.
    out : str or pathlib.Path
        The dataset folder (created).
    packs : sequence of (name, pack)
        Cities to partition by: an incident goes to the first city whose scope holds it
        (:func:`citywatch.incidents.jurisdiction.scope_to_pack`, with that pack's
        jurisdictions) and is left out, counted, when none does.  Empty: every incident goes
        to the :data:`ANY_CITY` partition unchanged.
    overwrite : bool
        Replace the partitions of cities already in ``out``.

    Returns
    -------
    ParquetExport

    Raises
    ------
    ValidationError
        When ``out`` already holds one of the cities and ``overwrite`` is false.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(out)
    names = [_check_city(name) for name, _ in packs] or [ANY_CITY]
    _prepare(folder, names, overwrite)
    result = ParquetExport(folder)
    run = uuid.uuid4().hex[:8]
    for chunk in chunks:
        for city, part in _by_city(coerce_frame(chunk), packs, result.dropped):
            result.rows[city] = result.rows.get(city, 0) + len(part)
            # one conversion to Arrow per chunk, then a slice of it per month
            table = pa.Table.from_pandas(part[list(COLUMNS)], preserve_index=False)
            codes, months = pd.factorize(month_key(part["received_at"]), sort=True)
            for i, month in enumerate(months):
                target = folder / f"city={city}" / f"month={month}"
                target.mkdir(parents=True, exist_ok=True)
                rows = table.take(np.flatnonzero(codes == i))
                pq.write_table(rows, target / f"part-{run}-{result.files:05d}.parquet")
                result.files += 1
                result.months.add(str(month))
    return result


def _by_city(
    frame: pd.DataFrame, packs: Sequence[tuple[str, PackLike]], dropped: dict[str, int]
) -> Iterable[tuple[str, pd.DataFrame]]:
    if not packs:
        yield ANY_CITY, frame
        return
    left = frame
    for name, pack in packs:
        if not len(left):
            return
        inside, _, _ = scope_to_pack(left, pack)
        if len(inside):
            yield name, inside
        left = left.drop(index=inside.index)
    if len(left):
        reason = "outside every given city pack"
        dropped[reason] = dropped.get(reason, 0) + len(left)


def dataset_cities(folder: str | Path) -> list[str]:
    """The cities of a dataset written by :func:`write_dataset`."""
    path = _dataset(folder)
    return sorted(p.name.removeprefix("city=") for p in path.glob("city=*") if p.is_dir())


def _dataset(folder: str | Path) -> Path:
    path = Path(folder)
    if not path.is_dir():
        raise NotFoundError(
            f"no Parquet dataset at {path}: write one with incidents export --parquet"
        )
    return path


def open_dataset(
    folder: str | Path,
    columns: Sequence[str],
    *,
    city: str | None = None,
    first_month: date | None = None,
    last_month: date | None = None,
) -> dd.DataFrame:
    """Lazily read some columns of a dataset, pruned to a city and a range of months.

    Parameters
    ----------
    folder : str or pathlib.Path
        A dataset written by :func:`write_dataset`.
    columns : sequence of str
        Canonical columns to read.
    city : str, optional
        Only this city's partitions (default: every city).
    first_month, last_month : datetime.date, optional
        Only the months (UTC) from ``first_month`` to ``last_month``, both included.

    Returns
    -------
    dask.dataframe.DataFrame
        One partition per file (``city`` and ``month`` are not among the columns).

    Raises
    ------
    NotFoundError
        When the folder, the city or every month in range is missing.
    """
    import dask.dataframe as dd

    path = _dataset(folder)
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        raise ValidationError(f"not canonical incident columns: {', '.join(unknown)}")
    cities = dataset_cities(path)
    if city is not None and city not in cities:
        raise NotFoundError(
            f"{path} holds no incidents of {city!r}: it holds {', '.join(cities) or 'none'}"
        )
    files = sorted(
        str(f)
        for c in ([city] if city is not None else cities)
        for month_dir in (path / f"city={c}").glob("month=*")
        if _in_range(month_dir.name.removeprefix("month="), first_month, last_month)
        for f in month_dir.glob("*.parquet")
    )
    if not files:
        raise NotFoundError(f"{path} holds no incidents in the months asked for")
    try:
        # Files, not the folder: the partition columns stay out of the frame and the months
        # outside the range are never opened.
        frame: dd.DataFrame = dd.read_parquet(
            files, columns=list(columns), dataset={"partitioning": None}
        )
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the Parquet dataset {path}: {exc}") from None
    return frame


def _in_range(month: str, first: date | None, last: date | None) -> bool:
    key = month[:7]
    if first is not None and key < f"{first.year:04d}-{first.month:02d}":
        return False
    return last is None or key <= f"{last.year:04d}-{last.month:02d}"
