"""Offline geocoding over a pack's own street names: streets and cross streets to coordinates.

No internet and no external gazetteer: the index is built from the ``name`` attribute of the
pack's road edges (OSM ``name`` tags, the Baltimore centrelines' ``fullname``, the Chinese names
of the Shenzhen network).  A query is one street (``"N Charles St"``) or two or more joined by a
separator (``"1 Ave @ 110 St"``, ``"N Charles St & E North Ave"``, ``"深南大道 / 金田路"``,
``"Hauptstraße x Bergstraße"``).  An intersection is a road node where edges of both streets
meet; the nodes of one intersection (dual carriageways, slip roads) are clustered and the
cluster's mean position is returned.  Two streets that share no node but come within
:data:`NEAR_M` (the link between them is unnamed, as at 深南大道 / 金田路 in the Futian network)
give a ``near`` candidate at a lower score.  A street alone is located at its node nearest the
street's centroid.  A query of two numbers is read as ``lat, lon`` (or ``lon, lat`` when only
that order is valid).

Normalisation (:func:`normalise`) makes the match tolerant: Unicode NFKC (full-width letters,
digits and ``＆／＠`` become ASCII), case folding, punctuation removed, the usual street-type
and direction abbreviations (Street/St, Avenue/Ave/Av, North/N, ...), English and numeric
ordinals (``1st``, ``First`` -> ``1``) and German ``straße``/``strasse`` -> ``str``.  A street
matches exactly (score 1), with a direction prefix or street type added or dropped (0.9 / 0.8),
or by a close spelling (``difflib`` ratio at least :data:`FUZZY_CUTOFF`, score 0.7 x ratio).

Packs without street names (the bundled Manhattan network has none) give an index with
``has_names`` false; the API says so and the dashboard falls back to map clicks.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from citywatch.city.network import RoadNetwork, haversine_m
from citywatch.errors import ValidationError

__all__ = [
    "CLUSTER_M",
    "FUZZY_CUTOFF",
    "NEAR_M",
    "Candidate",
    "Geocoder",
    "geocoder_for",
    "has_street_names",
    "hit_rate",
    "normalise",
    "split_cross_streets",
]

#: Nodes of one intersection closer than this (metres) form one candidate.
CLUSTER_M: Final = 120.0
#: Two streets with no common node still cross if their nodes come this close (metres).
NEAR_M: Final = 250.0
#: Lowest ``difflib`` similarity of a misspelt street name that still matches.
FUZZY_CUTOFF: Final = 0.82
#: Most candidates returned by default.
DEFAULT_LIMIT: Final = 5

#: Separators between cross streets (after NFKC, so full-width forms are covered).
_SEPARATORS = re.compile(
    r"\s*(?:@|&|/|\\|\||\+|、|与|\bx\b|\band\b|\bat\b|\bund\b|\bcorner of\b)\s*",
    re.IGNORECASE,
)
_TOKEN_MAP: Final = {
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "avn": "ave",
    "road": "rd",
    "boulevard": "blvd",
    "drive": "dr",
    "place": "pl",
    "lane": "ln",
    "court": "ct",
    "terrace": "ter",
    "highway": "hwy",
    "parkway": "pkwy",
    "square": "sq",
    "circle": "cir",
    "expressway": "expy",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "first": "1",
    "second": "2",
    "third": "3",
    "fourth": "4",
    "fifth": "5",
    "sixth": "6",
    "seventh": "7",
    "eighth": "8",
    "ninth": "9",
    "tenth": "10",
    "eleventh": "11",
    "twelfth": "12",
}
_TYPES: Final = frozenset(
    {"st", "ave", "rd", "blvd", "dr", "pl", "ln", "ct", "ter", "hwy", "pkwy", "sq", "cir", "way"}
)
_DIRECTIONS: Final = frozenset({"n", "s", "e", "w", "ne", "nw", "se", "sw"})
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")
_CJK = re.compile(r"[\u3400-\u9fff]")


def normalise(name: str) -> str:
    """The comparable form of a street name.

    Examples
    --------
    >>> normalise("N. Charles Street")
    'n charles st'
    >>> normalise("１st Avenue")
    '1 ave'
    >>> normalise("Hauptstraße")
    'haupt st'
    """
    text = unicodedata.normalize("NFKC", name).casefold().strip()
    if _CJK.search(text):
        # Chinese names: no spaces or punctuation; "路口" (junction) names the road.
        text = re.sub(r"[\s\W_]+", "", text)
        return re.sub(r"路口$", "路", text)
    text = text.replace("straße", "str").replace("strasse", "str")
    text = re.sub(r"(?<=[a-z])str\b", " str", text)
    text = re.sub(r"[.,'’`\"()]", "", text)
    raw = [t for t in re.split(r"[\s\-]+", text) if t]
    tokens: list[str] = []
    for i, word in enumerate(raw):
        token = _TOKEN_MAP.get(word, word)
        if token in _DIRECTIONS and word != token and not _is_prefix_or_suffix(raw, i):
            token = word  # "North Ave": the direction word is the name itself
        ordinal = _ORDINAL.match(token)
        tokens.append(ordinal.group(1) if ordinal else token)
    return " ".join(tokens)


def _is_prefix_or_suffix(words: list[str], i: int) -> bool:
    """Whether direction word ``i`` qualifies a name (``North Charles St``, ``I 895 North``)
    rather than being it (``North Ave``, ``E North Ave``)."""
    rest = [_TOKEN_MAP.get(w, w) for w in words[i + 1 :]]
    if i == 0:
        return bool(rest) and not all(t in _TYPES for t in rest)
    return i == len(words) - 1 and i >= 2


def split_cross_streets(query: str) -> list[str]:
    """The street names of a query, in order (one for a street, two or more for a crossing)."""
    text = unicodedata.normalize("NFKC", query).strip()
    parts = [p.strip() for p in _SEPARATORS.split(text)]
    return [p for p in parts if p]


def _variants(norm: str) -> list[tuple[str, float]]:
    """Looser keys of a normalised name and their scores: direction or street type dropped."""
    tokens = norm.split()
    out: list[tuple[str, float]] = []
    if len(tokens) > 1 and tokens[0] in _DIRECTIONS:
        out.append((" ".join(tokens[1:]), 0.9))
    if len(tokens) > 1 and tokens[-1] in _TYPES:
        out.append((" ".join(tokens[:-1]), 0.8))
        if len(tokens) > 2 and tokens[0] in _DIRECTIONS:
            out.append((" ".join(tokens[1:-1]), 0.75))
    return out


def _names(value: Any) -> list[str]:
    """The names of one edge (OSMnx writes several as a list or its repr)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list):
            return [str(v) for v in parsed if v]
    return [text] if text and text.lower() not in ("nan", "<na>", "none") else []


@dataclass(frozen=True, slots=True)
class Candidate:
    """One geocoding answer: where, what was matched, how well (0..1), and how."""

    lon: float
    lat: float
    label: str
    score: float
    kind: str  # "intersection", "near" (see Geocoder._near_crossing), "street", "coordinates"
    streets: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "lon": self.lon,
            "lat": self.lat,
            "label": self.label,
            "score": round(self.score, 4),
            "kind": self.kind,
            "streets": list(self.streets),
        }


@dataclass
class Geocoder:
    """Street and intersection index of one road network.

    Build it with :meth:`from_network` (or :func:`geocoder_for`, cached per pack).
    """

    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]
    #: normalised street name -> node positions on it.
    nodes_of: dict[str, npt.NDArray[np.int64]]
    #: normalised name -> the name as the source spells it (most frequent spelling).
    display: dict[str, str]
    #: looser key -> [(normalised name, score)].
    loose: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    @classmethod
    def from_network(cls, network: RoadNetwork) -> Geocoder:
        """Index the named edges of ``network`` (both end nodes of each edge)."""
        edges = network.edges
        nodes: dict[str, set[int]] = defaultdict(set)
        spellings: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        named = edges[edges["name"].notna()]
        for u, v, value in zip(named["u"], named["v"], named["name"], strict=True):
            for name in _names(value):
                key = normalise(name)
                if not key:
                    continue
                nodes[key].update((int(u), int(v)))
                spellings[key][name] += 1
        nodes_of = {k: np.fromiter(sorted(v), dtype=np.int64) for k, v in nodes.items()}
        display = {k: max(s.items(), key=lambda kv: kv[1])[0] for k, s in spellings.items()}
        loose: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for key in nodes_of:
            for variant, score in _variants(key):
                loose[variant].append((key, score))
        return cls(network.lon, network.lat, nodes_of, display, dict(loose))

    @property
    def has_names(self) -> bool:
        """Whether the network carries any street name."""
        return bool(self.nodes_of)

    @property
    def street_count(self) -> int:
        """Distinct (normalised) street names."""
        return len(self.nodes_of)

    def streets(self, name: str, limit: int = 8) -> list[tuple[str, float]]:
        """Indexed streets matching ``name``, best first: ``(normalised name, score)``."""
        key = normalise(name)
        if not key:
            return []
        found: dict[str, float] = {}

        def add(k: str, score: float) -> None:
            if score > found.get(k, 0.0):
                found[k] = score

        if key in self.nodes_of:
            add(key, 1.0)
        for k, score in self.loose.get(key, []):
            add(k, score)
        for variant, score in _variants(key):
            if variant in self.nodes_of:
                add(variant, score)
            for k, s2 in self.loose.get(variant, []):
                add(k, min(score, s2) - 0.05)
        if not found:
            for k in difflib.get_close_matches(key, self.nodes_of, n=limit, cutoff=FUZZY_CUTOFF):
                add(k, 0.7 * difflib.SequenceMatcher(None, key, k).ratio())
        return sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]

    def _clusters(self, nodes: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
        """Group nodes closer than :data:`CLUSTER_M` (single linkage, greedy)."""
        groups: list[list[int]] = []
        for n in nodes.tolist():
            for g in groups:
                d = haversine_m(self.lon[g], self.lat[g], self.lon[n], self.lat[n])
                if float(d.min()) <= CLUSTER_M:
                    g.append(n)
                    break
            else:
                groups.append([n])
        return [np.asarray(g, dtype=np.int64) for g in groups]

    def _street_point(self, key: str) -> tuple[float, float]:
        nodes = self.nodes_of[key]
        lon, lat = self.lon[nodes], self.lat[nodes]
        d = haversine_m(lon, lat, float(lon.mean()), float(lat.mean()))
        i = int(np.argmin(d))
        return float(lon[i]), float(lat[i])

    def geocode(self, query: str, limit: int = DEFAULT_LIMIT) -> list[Candidate]:
        """Ranked candidates for a street, a crossing of streets, or coordinates.

        Raises
        ------
        ValidationError
            If the query is empty or longer than 200 characters, or names no street (only
            separators such as ``/`` or ``@``).
        """
        text = query.strip()
        if not text or len(text) > 200:
            raise ValidationError("the address must be 1 to 200 characters", field="q")
        coords = _coordinates(text)
        if coords is not None:
            lon, lat = coords
            return [Candidate(lon, lat, f"{lat:.6f}, {lon:.6f}", 1.0, "coordinates")]
        parts = split_cross_streets(text)
        if not parts:
            raise ValidationError("the address names no street", field="q")
        if len(parts) == 1:
            out = []
            for key, score in self.streets(parts[0]):
                lon, lat = self._street_point(key)
                out.append(Candidate(lon, lat, self.display[key], score, "street", (key,)))
            return out[:limit]
        return self._crossing(parts, limit)

    def _crossing(self, parts: list[str], limit: int) -> list[Candidate]:
        options = [self.streets(p) for p in parts]
        if any(not o for o in options):
            return []
        out: list[Candidate] = []
        # every combination of one match per part (parts are few, matches at most 8 each)
        combos: list[list[tuple[str, float]]] = [[]]
        for opts in options:
            combos = [[*c, o] for c in combos for o in opts][:256]
        seen: set[tuple[str, ...]] = set()
        for combo in combos:
            keys = tuple(k for k, _ in combo)
            if len(set(keys)) < len(keys) or tuple(sorted(keys)) in seen:
                continue
            seen.add(tuple(sorted(keys)))
            common = self.nodes_of[keys[0]]
            for k in keys[1:]:
                common = np.intersect1d(common, self.nodes_of[k], assume_unique=True)
            score = math.prod(s for _, s in combo)
            if common.size == 0:
                near = self._near_crossing(keys, score) if len(keys) == 2 else None
                if near is not None:
                    out.append(near)
                continue
            for group in self._clusters(common):
                label = " & ".join(self.display[k] for k in keys)
                out.append(
                    Candidate(
                        float(self.lon[group].mean()),
                        float(self.lat[group].mean()),
                        label,
                        score,
                        "intersection",
                        keys,
                    )
                )
        out.sort(key=lambda c: (-c.score, c.label, c.lon))
        return out[:limit]

    def _near_crossing(self, keys: tuple[str, ...], score: float) -> Candidate | None:
        """Two streets that share no node but come within :data:`NEAR_M` (a junction whose
        connecting link is unnamed, a divided road): the node of the street with more nodes
        nearest the other street, scored down by the gap."""
        a, b = sorted(keys, key=lambda k: -len(self.nodes_of[k]))
        na, nb = self.nodes_of[a], self.nodes_of[b]
        lat0 = math.radians(float(self.lat[na].mean()))
        xy_a = np.column_stack((self.lon[na] * math.cos(lat0), self.lat[na])) * 111_195.0
        xy_b = np.column_stack((self.lon[nb] * math.cos(lat0), self.lat[nb])) * 111_195.0
        gap, index = cKDTree(xy_a).query(xy_b, k=1)
        best = int(np.argmin(gap))
        if not gap[best] <= NEAR_M:
            return None
        node = int(na[index[best]])
        label = " & ".join(self.display[k] for k in keys)
        factor = 0.8 * (1.0 - 0.5 * float(gap[best]) / NEAR_M)
        return Candidate(
            float(self.lon[node]), float(self.lat[node]), label, score * factor, "near", keys
        )


def _coordinates(text: str) -> tuple[float, float] | None:
    """``(lon, lat)`` of a query of two numbers (``lat, lon`` read first), else None."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*[,;\s]\s*(-?\d+(?:\.\d+)?)\s*", text)
    if m is None:
        return None
    a, b = float(m.group(1)), float(m.group(2))
    if -90 <= a <= 90 and -180 <= b <= 180:
        return b, a
    if -90 <= b <= 90 and -180 <= a <= 180:
        return a, b
    return None


_CACHE: dict[int, tuple[RoadNetwork, Geocoder]] = {}
#: Held while an index is built: concurrent first calls build it once.
_BUILDING = threading.Lock()


def has_street_names(network: RoadNetwork) -> bool:
    """Whether any edge of ``network`` has a name (cheap: the index is not built)."""
    return bool(network.edges["name"].notna().any())


def geocoder_for(network: RoadNetwork) -> Geocoder:
    """The (cached) geocoder of ``network``: built once per network object per process.

    The service builds it at start (:meth:`citywatch.dispatch.intake.ConsoleService.prepare`),
    so no geocode request waits for the index; concurrent first calls build it once.
    """
    hit = _CACHE.get(id(network))
    if hit is None or hit[0] is not network:
        with _BUILDING:
            hit = _CACHE.get(id(network))
            if hit is None or hit[0] is not network:
                hit = (network, Geocoder.from_network(network))
                _CACHE[id(network)] = hit
    return hit[1]


def hit_rate(
    geocoder: Geocoder, rows: Iterable[tuple[str, float, float]], *, within_m: float
) -> dict[str, float]:
    """Share of ``(query, lon, lat)`` rows whose first candidate lies within ``within_m``.

    Returns the count, hits, hit rate, the share with any of the first :data:`DEFAULT_LIMIT`
    candidates within ``within_m``, the share answered and the median distance of the first
    candidates.
    """
    n = hits = hits_any = 0
    distances: list[float] = []
    for query, lon, lat in rows:
        n += 1
        found = geocoder.geocode(query, limit=DEFAULT_LIMIT)
        if not found:
            continue
        d = haversine_m([c.lon for c in found], [c.lat for c in found], lon, lat)
        distances.append(float(d[0]))
        hits += bool(d[0] <= within_m)
        hits_any += bool(d.min() <= within_m)
    return {
        "queries": float(n),
        "hits": float(hits),
        "hit_rate": hits / n if n else math.nan,
        "hit_rate_any": hits_any / n if n else math.nan,
        "answered": len(distances) / n if n else math.nan,
        "median_m": float(np.median(distances)) if distances else math.nan,
    }
