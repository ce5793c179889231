"""Console rules as pure functions: the console config, incident numbers, duplicate calls.

The numbers of the console (duplicate radius and window, premise look-back per category,
caution kinds, number prefixes) are defined once, in ``dispatch/data/console.toml``, and read by
:func:`load_console_config`.  :func:`find_duplicates` is the one duplicate rule, used by the live
service at intake and by :func:`evaluate_duplicates` on seeded **synthetic** multi-caller
incidents (:func:`synthetic_calls`), which measures its precision and recall.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from citywatch.errors import DataError
from citywatch.incidents.taxonomy import Taxonomy, load_taxonomy
from citywatch.tomlkeys import check_keys, read_toml

__all__ = [
    "CAUTION_SEVERITIES",
    "ConsoleConfig",
    "DuplicateCandidate",
    "SyntheticCall",
    "distance_m",
    "evaluate_duplicates",
    "find_duplicates",
    "format_number",
    "load_console_config",
    "parse_console_config",
    "synthetic_calls",
]

#: EIDO caution severities (``cautionSeverity``), most severe first.
CAUTION_SEVERITIES = ("highest", "high", "normal", "low", "lowest")
_EARTH_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine on the mean sphere)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * _EARTH_M * math.asin(math.sqrt(a))


@dataclass(frozen=True)
class ConsoleConfig:
    """The console's numbers (see ``dispatch/data/console.toml``)."""

    number_digits: int
    number_prefix: Mapping[str, str]
    duplicate_radius_m: float
    duplicate_window_s: float
    compatible: tuple[tuple[str, ...], ...]
    premise_radius_m: float
    premise_default_days: int
    premise_days: Mapping[str, int]
    premise_max_listed: int
    caution_radius_m: float
    caution_kinds: tuple[str, ...]

    def prefix(self, pack: str) -> str:
        """The incident-number prefix of ``pack``."""
        found = self.number_prefix.get(pack)
        if found:
            return found
        letters = "".join(c for c in pack if c.isalnum())
        return (letters[:3] or "CW").upper()

    def lookback_days(self, category: str, taxonomy: Taxonomy) -> int:
        """Premise-history look-back of ``category``: its own, an ancestor's, or the default."""
        code: str | None = category
        while code is not None:
            if code in self.premise_days:
                return self.premise_days[code]
            code = taxonomy.category(code).parent if code in taxonomy else None
        return self.premise_default_days

    def compatible_categories(self, a: str, b: str, taxonomy: Taxonomy) -> bool:
        """Whether calls of categories ``a`` and ``b`` may report the same incident."""
        if a == b or b in taxonomy.expand(a) or a in taxonomy.expand(b):
            return True
        return any(
            a in members and b in members
            for members in (taxonomy.expand_many(group) for group in self.compatible)
        )


_SECTIONS = ("numbers", "duplicates", "premise", "cautions")


def parse_console_config(
    doc: Mapping[str, Any], where: str, taxonomy: Taxonomy | None = None
) -> ConsoleConfig:
    """A :class:`ConsoleConfig` from a parsed TOML document; unknown keys are refused, and so
    are (when ``taxonomy`` is given) look-backs of unknown categories and compatibility sets
    naming unknown categories or groups."""
    check_keys(doc, _SECTIONS, where)
    try:
        numbers, dup, premise, cautions = (doc[s] for s in _SECTIONS)
        check_keys(numbers, ("digits", "prefix"), f"{where} [numbers]")
        check_keys(dup, ("radius_m", "window_min", "compatible"), f"{where} [duplicates]")
        check_keys(
            premise,
            ("radius_m", "default_days", "max_listed", "lookback_days"),
            f"{where} [premise]",
        )
        check_keys(cautions, ("radius_m", "kinds"), f"{where} [cautions]")
        config = ConsoleConfig(
            number_digits=int(numbers["digits"]),
            number_prefix={str(k): str(v) for k, v in numbers.get("prefix", {}).items()},
            duplicate_radius_m=float(dup["radius_m"]),
            duplicate_window_s=float(dup["window_min"]) * 60.0,
            compatible=tuple(tuple(str(c) for c in g) for g in dup.get("compatible", [])),
            premise_radius_m=float(premise["radius_m"]),
            premise_default_days=int(premise["default_days"]),
            premise_days={str(k): int(v) for k, v in premise.get("lookback_days", {}).items()},
            premise_max_listed=int(premise["max_listed"]),
            caution_radius_m=float(cautions["radius_m"]),
            caution_kinds=tuple(str(k) for k in cautions["kinds"]),
        )
    except KeyError as exc:
        raise DataError(f"{where}: missing key {exc.args[0]!r}") from exc
    except (AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{where}: invalid console config: {exc}") from exc
    if not (config.duplicate_radius_m > 0 and config.duplicate_window_s > 0):
        raise DataError(f"{where}: duplicate radius and window must be positive")
    if taxonomy is not None:
        unknown = sorted(set(config.premise_days) - set(taxonomy.categories))
        if unknown:
            raise DataError(
                f"{where} [premise.lookback_days]: unknown category {', '.join(unknown)}"
            )
        known = set(taxonomy.categories) | set(taxonomy.groups)
        unknown = sorted({c for g in config.compatible for c in g} - known)
        if unknown:
            raise DataError(
                f"{where} [duplicates] compatible: unknown category or group {', '.join(unknown)}"
            )
    return config


def load_console_config(
    path: str | Path | None = None, taxonomy: Taxonomy | None = None
) -> ConsoleConfig:
    """Read the console config, checked against a taxonomy.

    Parameters
    ----------
    path : str or Path, optional
        A TOML file (default: the bundled ``dispatch/data/console.toml``).
    taxonomy : Taxonomy, optional
        The categories its look-backs and compatibility sets may name (default: bundled).

    Returns
    -------
    ConsoleConfig

    Raises
    ------
    DataError
        Naming the file when it cannot be read or parsed, and its table when a key, category
        or value is wrong.
    """
    taxonomy = taxonomy or load_taxonomy()
    if path is None:
        text = files("citywatch.dispatch").joinpath("data/console.toml").read_text("utf-8")
        return parse_console_config(tomllib.loads(text), "console.toml", taxonomy)
    return parse_console_config(read_toml(path, "the console config"), str(path), taxonomy)


def format_number(prefix: str, year: int, sequence: int, digits: int) -> str:
    """``PREFIX-YEAR-000123``."""
    return f"{prefix}-{year}-{sequence:0{digits}d}"


@dataclass(frozen=True, slots=True)
class DuplicateCandidate:
    """An active incident a new call may duplicate, with how far and how long ago."""

    incident_id: str
    distance_m: float
    age_s: float


def find_duplicates(
    call: tuple[float, float, str, datetime],
    active: Sequence[tuple[str, float, float, str, datetime]],
    config: ConsoleConfig,
    taxonomy: Taxonomy,
) -> list[DuplicateCandidate]:
    """Active incidents that ``call`` may duplicate, nearest first.

    Parameters
    ----------
    call : (lon, lat, category, received_at)
        The new call.
    active : sequence of (incident_id, lon, lat, category, received_at)
        The active incidents (not cleared, cancelled or merged).

    A candidate is within ``config.duplicate_radius_m`` metres, received at most
    ``config.duplicate_window_s`` before the call (or up to that much after, for a call entered
    late), and of a compatible category.
    """
    lon, lat, category, at = call
    out = []
    for incident_id, ilon, ilat, icat, iat in active:
        age = (at - iat).total_seconds()
        if abs(age) > config.duplicate_window_s:
            continue
        d = distance_m(lon, lat, ilon, ilat)
        if d > config.duplicate_radius_m:
            continue
        if not config.compatible_categories(category, icat, taxonomy):
            continue
        out.append(DuplicateCandidate(incident_id, d, age))
    out.sort(key=lambda c: (c.distance_m, abs(c.age_s), c.incident_id))
    return out


@dataclass(frozen=True, slots=True)
class SyntheticCall:
    """One SYNTHETIC call: where the caller places it, when, its category, and the label (the
    true incident it reports)."""

    lon: float
    lat: float
    category: str
    at: datetime
    incident: int


def synthetic_calls(
    points: np.ndarray,
    categories: Sequence[str],
    *,
    start: datetime,
    incidents: int,
    hours: float,
    seed: int,
    extra_callers_mean: float = 0.8,
    caller_sigma_m: float = 35.0,
    callback_mean_min: float = 4.0,
    other_category_share: float = 0.1,
    taxonomy: Taxonomy,
) -> list[SyntheticCall]:
    """SYNTHETIC, labelled multi-caller incidents, in order of arrival.

    ``incidents`` incidents arrive uniformly over ``hours`` at road nodes drawn from ``points``
    (``(n, 2)`` lon/lat) with categories drawn from ``categories``.  Each has a first caller
    at the incident and a Poisson(``extra_callers_mean``) number of further callers, each
    ``Exp(callback_mean_min)`` minutes after the first, placing the incident with an isotropic
    Gaussian error of ``caller_sigma_m`` metres per axis; a share ``other_category_share`` of the
    further callers names a different category of the same taxonomy parent or group (a robbery
    reported as an assault or a theft; the umbrella groups ``criminal`` and ``non_criminal``
    are not confusions).  The numbers are assumptions of this generator, not measurements.
    """
    rng = np.random.default_rng(seed)
    calls: list[SyntheticCall] = []
    picks = rng.integers(0, len(points), incidents)
    starts = np.sort(rng.uniform(0.0, hours * 3600.0, incidents))
    cats = rng.choice(np.asarray(categories, dtype=object), incidents)
    for k in range(incidents):
        lon, lat = (float(x) for x in points[picks[k]])
        t0 = start + timedelta(seconds=float(starts[k]))
        category = str(cats[k])
        calls.append(SyntheticCall(lon, lat, category, t0, k))
        m_per_deg_lat = 111_195.0
        m_per_deg_lon = m_per_deg_lat * math.cos(math.radians(lat))
        for _ in range(int(rng.poisson(extra_callers_mean))):
            dx, dy = rng.normal(0.0, caller_sigma_m, 2)
            delay = float(rng.exponential(callback_mean_min * 60.0))
            named = category
            if rng.random() < other_category_share:
                related = [
                    c for c in categories if c != category and _related(c, category, taxonomy)
                ]
                if related:
                    named = str(related[int(rng.integers(0, len(related)))])
            calls.append(
                SyntheticCall(
                    lon + dx / m_per_deg_lon,
                    lat + dy / m_per_deg_lat,
                    named,
                    t0 + timedelta(seconds=delay),
                    k,
                )
            )
    calls.sort(key=lambda c: c.at)
    return calls


_UMBRELLAS = frozenset({"criminal", "non_criminal"})


def _related(a: str, b: str, taxonomy: Taxonomy) -> bool:
    pa = taxonomy.category(a).parent or a
    pb = taxonomy.category(b).parent or b
    return pa == pb or any(a in g and b in g for g in _groups(taxonomy))


def _groups(taxonomy: Taxonomy) -> list[frozenset[str]]:
    """Groups whose members a caller may confuse (not the umbrellas ``criminal`` and
    ``non_criminal``, which join unrelated calls)."""
    return [taxonomy.expand(g) for g in taxonomy.groups if g not in _UMBRELLAS]


def evaluate_duplicates(
    calls: Sequence[SyntheticCall], config: ConsoleConfig, taxonomy: Taxonomy
) -> dict[str, float]:
    """Replay ``calls`` through :func:`find_duplicates` as the console would.

    Each call is compared with the incidents opened by earlier calls within
    ``config.duplicate_window_s`` (the live rule: an incident's own receipt time); a flagged
    call is merged into its nearest candidate.  A flag is correct when that incident was opened
    by a call of the same label.  Returns true/false positives, false negatives, precision and
    recall.
    """
    opened: list[tuple[str, float, float, str, datetime]] = []
    label_of: dict[str, int] = {}
    seen_labels: set[int] = set()
    tp = fp = fn = 0
    for n, call in enumerate(calls):
        horizon = call.at - timedelta(seconds=config.duplicate_window_s)
        opened = [o for o in opened if o[4] >= horizon]
        found = find_duplicates(
            (call.lon, call.lat, call.category, call.at), opened, config, taxonomy
        )
        is_dup = call.incident in seen_labels
        if found:
            if label_of[found[0].incident_id] == call.incident:
                tp += 1
            else:
                fp += 1
                fn += is_dup
        else:
            fn += is_dup
            iid = f"s{n}"
            opened.append((iid, call.lon, call.lat, call.category, call.at))
            label_of[iid] = call.incident
        seen_labels.add(call.incident)
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    return {
        "calls": float(len(calls)),
        "duplicates": float(tp + fn),
        "true_positives": float(tp),
        "false_positives": float(fp),
        "false_negatives": float(fn),
        "precision": precision,
        "recall": recall,
    }
