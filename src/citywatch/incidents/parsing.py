"""Building blocks that every source reader shares: raw CSV reading, local times, mappings.

A reader turns a file into a :class:`Parsed`: the canonical records, the raw rows (for the
rejected-rows file) and a reason for every row that cannot be imported.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import time
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from citywatch.errors import DataError
from citywatch.incidents.decoding import REPLACEMENT, decode_csv
from citywatch.incidents.record import TIME_PRECISIONS, check_records, coerce_frame, first_reason
from citywatch.incidents.taxonomy import Taxonomy
from citywatch.tomlkeys import check_keys

__all__ = [
    "COARSE_TIME_OF_DAY",
    "MAPPING_KEYS",
    "Check",
    "Parsed",
    "assemble",
    "check_precision",
    "combine_reasons",
    "load_mapping",
    "localize",
    "map_categories",
    "map_solved",
    "parse_bool",
    "parse_float",
    "read_raw_csv",
    "require_columns",
    "undecodable",
]

#: Day- and month-precision times are stored at noon local time of the day (the 1st of the
#: month): 12 h from both ends, so the value falls in the right day and month in local time
#: *and* in UTC for every offset within ±12 h.
COARSE_TIME_OF_DAY: Final = time(12, 0)

#: A named row check: ``(reason, bad)`` where ``bad`` marks the rows that fail.
Check = tuple[str, pd.Series]

_MANGLED_BOM: Final = "\ufeff".encode().decode("latin-1")
_TRUE: Final = frozenset({"true", "1", "yes", "y", "t"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f"})


@dataclass
class Parsed:
    """What a source reader produced from one file.

    Attributes
    ----------
    records
        Canonical frame (see :func:`citywatch.incidents.record.coerce_frame`), one row per raw
        row, same positional index as ``raw``. Rows with a reason are not imported.
    raw
        The source rows as text, for the rejected-rows file.
    reasons
        Why a row cannot be imported, ``<NA>`` if it can.
    merged
        Rows that describe an incident another row of the file already describes (an NYPD
        shooting with several victims is one incident): counted, not imported, not rejected.
    notes
        Counts of things done to valid rows that a user should know (ambiguous local times...).
    """

    records: pd.DataFrame
    raw: pd.DataFrame
    reasons: pd.Series
    merged: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))
    notes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.merged.empty and len(self.raw):
            self.merged = pd.Series(False, index=self.raw.index)

    @property
    def importable(self) -> pd.Series:
        """Rows that become incidents: no reject reason and not merged into another row."""
        return self.reasons.isna() & ~self.merged

    @property
    def incidents(self) -> pd.DataFrame:
        """The canonical records of the :attr:`importable` rows (one per incident)."""
        return self.records[self.importable.to_numpy(dtype=bool)].reset_index(drop=True)


def read_raw_csv(
    path: str | Path, *, encoding: str | None = None, usecols: list[str] | None = None
) -> pd.DataFrame:
    """Read a CSV (optionally gzip/bz2/xz/zip-compressed) with every cell as text.

    Empty cells become ``<NA>``. The index is the 0-based data row number. With ``usecols``
    only those columns are read (the others never enter memory) and a missing one is a
    :class:`DataError`. The text is decoded by :func:`citywatch.incidents.decoding.decode_csv`
    (``encoding`` ``None`` detects UTF-8 or cp1252); ``frame.attrs["encoding"]`` records the
    encoding used; ``frame.attrs["replaced"]`` is true when some bytes were invalid in it (their
    rows hold U+FFFD, see :func:`undecodable`).

    Raises
    ------
    DataError
        If the file cannot be read or parsed as CSV (an unclosed quote is named with its line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    decoded = decode_csv(path, encoding)

    def parse(**options: Any) -> pd.DataFrame:
        frame: pd.DataFrame = pd.read_csv(
            BytesIO(decoded.data),
            dtype="string",
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8",
            **options,
        )
        return frame

    try:
        frame = parse(usecols=usecols)
    except pd.errors.ParserError as exc:  # a ValueError too: test it first
        raise DataError(_parser_message(path, exc)) from None
    except ValueError:  # usecols names a column the file lacks
        header = [_clean_header(c) for c in parse(nrows=0).columns]
        missing = [c for c in usecols or () if c not in header]
        raise DataError(
            f"{path.name}: missing columns {', '.join(missing)} (found: {', '.join(header)})"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path.name} is empty: no header row") from None
    frame.columns = [_clean_header(c) for c in frame.columns]
    frame = frame.reset_index(drop=True)
    frame.attrs["encoding"] = decoded.encoding
    frame.attrs["replaced"] = decoded.replaced
    return frame


def _clean_header(name: object) -> str:
    # Some exports carry a byte-order mark that was decoded as Latin-1 and re-encoded
    # ("ï»¿"), which decoding cannot strip; remove it from the header too.
    return str(name).strip().removeprefix("\ufeff").removeprefix(_MANGLED_BOM)


_EOF_IN_QUOTE: Final = re.compile(r"EOF inside string starting at row (\d+)")


def _parser_message(path: Path, exc: Exception) -> str:
    match = _EOF_IN_QUOTE.search(str(exc))
    if match is None:
        return f"cannot read {path} as CSV: {' '.join(str(exc).split())}"
    line = int(match.group(1)) + 1  # pandas counts from 0 at the header line
    return (
        f"{path.name}: a quoted field opened on line {line} is never closed (an unbalanced "
        "'\"'); every row from there to the end of the file would be one cell"
    )


def undecodable(raw: pd.DataFrame) -> pd.Series:
    """Rows holding U+FFFD: bytes that were invalid in the file's encoding."""
    bad = pd.Series(False, index=raw.index)
    for column in raw.columns:
        values = raw[column]
        if values.dtype == "string":
            bad |= values.str.contains(REPLACEMENT, regex=False).fillna(False).astype(bool)
    return bad


def require_columns(raw: pd.DataFrame, columns: list[str] | tuple[str, ...], what: str) -> None:
    """Raise :class:`DataError` naming the columns of ``columns`` that ``raw`` lacks."""
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(
            f"{what}: missing columns {', '.join(missing)} (found: {', '.join(raw.columns)})"
        )


def localize(naive: pd.Series, tz: str) -> tuple[pd.Series, dict[str, int]]:
    """Interpret naive local wall-clock times in ``tz`` and convert them to UTC.

    Local times that occur twice (the hour repeated when daylight saving time ends) are taken
    as the first occurrence (daylight time); times that do not exist (skipped when it starts)
    are shifted forward to the first valid instant. Both are counted in the returned notes.

    Parameters
    ----------
    naive
        ``datetime64`` values without time zone (``NaT`` allowed).
    tz
        IANA time zone name, e.g. ``"America/New_York"``.

    Returns
    -------
    (pandas.Series, dict)
        UTC date-times and counts ``{"ambiguous_local_time": n, "nonexistent_local_time": m}``
        (zero counts omitted).
    """
    naive = pd.to_datetime(naive).astype("datetime64[us]")
    first = np.ones(len(naive), dtype=bool)
    strict_gap = naive.dt.tz_localize(tz, ambiguous=first, nonexistent="NaT")
    nonexistent = int((strict_gap.isna() & naive.notna()).sum())
    strict_both = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    ambiguous = int((strict_both.isna() & naive.notna()).sum()) - nonexistent
    local = naive.dt.tz_localize(tz, ambiguous=first, nonexistent="shift_forward")
    notes = {"ambiguous_local_time": ambiguous, "nonexistent_local_time": nonexistent}
    return local.dt.tz_convert("UTC"), {k: v for k, v in notes.items() if v}


def parse_float(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse text to float; return (values, bad) where ``bad`` marks unparseable non-empty text."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = numbers.isna() & values.notna()
    return numbers, bad


def parse_bool(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse ``true/false/1/0/yes/no`` (any case); return (booleans, bad)."""
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    bad = out.isna() & text.notna() & (text != "")
    return out, bad


def combine_reasons(*series: pd.Series) -> pd.Series:
    """The first non-missing reason across ``series`` (all aligned), element-wise."""
    out = series[0].astype("string")
    for more in series[1:]:
        out = out.fillna(more.astype("string"))
    return out


def assemble(
    source: str,
    raw: pd.DataFrame,
    data: dict[str, Any],
    checks: list[tuple[str, pd.Series]],
    taxonomy: Taxonomy,
    notes: dict[str, int] | None = None,
    duplicates: Literal["reject", "merge"] = "reject",
) -> Parsed:
    """Finish a reader's work: canonical frame, default priorities, ids and reject reasons.

    Parameters
    ----------
    source
        Value of the ``source`` column; ids become ``f"{source}:{source_id}"``.
    raw
        The raw rows.
    data
        Canonical columns computed by the reader (at least ``source_id``, ``received_at``,
        ``category``); ``time_precision`` defaults to ``exact`` and ``priority`` to the
        category's default priority.
    checks
        Source-specific ``(reason, bad)`` checks; they take precedence over the generic ones
        of :func:`citywatch.incidents.record.check_records`.
    taxonomy
        Taxonomy for defaults and category checks.
    notes
        Counts to report (see :class:`Parsed`).
    duplicates
        What to do with a valid row whose source id an earlier valid row has: ``"reject"``
        it as ``duplicate_in_file``, or count it as ``merged`` into that row's incident.
    """
    frame = pd.DataFrame(data, index=raw.index)
    frame["source"] = source
    frame["id"] = source + ":" + frame["source_id"].astype("string")
    if "time_precision" not in frame.columns:
        frame["time_precision"] = "exact"
    defaults = frame["category"].map({c: v.priority for c, v in taxonomy.categories.items()})
    given = frame["priority"] if "priority" in frame.columns else None
    frame["priority"] = defaults if given is None else given.fillna(defaults)
    records = coerce_frame(frame)
    reasons = combine_reasons(first_reason(records.index, checks), check_records(records, taxonomy))
    valid = reasons.isna().to_numpy(dtype=bool)
    repeat = pd.Series(False, index=records.index)
    repeat[valid] = records.loc[valid, "source_id"].duplicated().to_numpy()
    if duplicates == "merge":
        merged = repeat
    else:
        reasons = reasons.mask(repeat, "duplicate_in_file")
        merged = pd.Series(False, index=records.index)
    return Parsed(
        records=records,
        raw=raw.reset_index(drop=True),
        reasons=reasons,
        merged=merged,
        notes=notes or {},
    )


def map_categories(
    values: pd.Series, mapping: dict[str, Any], notes: dict[str, int] | None = None
) -> tuple[pd.Series, Check]:
    """Map source category text through the mapping's ``[categories]`` table.

    Returns the taxonomy codes and the ``unmapped_category`` check.  With a mapping key
    ``default_category``, unmapped rows get that code instead of being rejected, and
    ``notes["category_defaulted_to_<code>"]`` counts them.
    """
    table = {str(k): v for k, v in mapping.get("categories", {}).items()}
    codes = values.astype("string").str.strip().map(table)
    default = mapping.get("default_category")
    if default is not None:
        unmapped = int(codes.isna().sum())
        if unmapped and notes is not None:
            notes[f"category_defaulted_to_{default}"] = unmapped
        codes = codes.fillna(str(default))
    return codes, ("unmapped_category", codes.isna())


def map_solved(values: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    """Map disposition text through the mapping's ``[solved]`` table (unlisted: unknown)."""
    table = {str(k): bool(v) for k, v in mapping.get("solved", {}).items()}
    return values.astype("string").str.strip().map(table).astype("boolean")


def check_precision(value: str) -> str:
    """Validate a time-precision name from a mapping file."""
    if value not in TIME_PRECISIONS:
        raise DataError(f"time precision must be one of {', '.join(TIME_PRECISIONS)}: {value!r}")
    return value


#: The keys a mapping TOML may have (each source reads those it needs; see docs/incidents.md).
MAPPING_KEYS = (
    "dataset",
    "timezone",
    "time_format",
    "time_precision",
    "encoding",
    "category",
    "columns",
    "categories",
    "solved",
    "disposition",
    "priorities",
    "default_category",
)


def load_mapping(name_or_path: str | Path) -> dict[str, Any]:
    """Load a category-mapping TOML: a bundled one by source name, or a file path.

    Raises
    ------
    DataError
        If the file does not exist, is not valid TOML or has a key not in :data:`MAPPING_KEYS`.
    """
    path = Path(name_or_path)
    try:
        if path.suffix == ".toml":
            text = path.read_text("utf-8")
        else:
            bundled = resources.files("citywatch.incidents").joinpath(
                f"data/mappings/{name_or_path}.toml"
            )
            text = bundled.read_text("utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        raise DataError(f"no category mapping {name_or_path!r}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"cannot read mapping {name_or_path}: {exc}") from None
    check_keys(doc, MAPPING_KEYS, f"mapping {name_or_path}")
    return doc
