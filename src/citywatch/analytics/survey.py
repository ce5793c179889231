"""Public-satisfaction surveys: satisfaction rate with a confidence interval by area.

A response is satisfied when its answer is 4 or 5 on the 5-point scale (1 = very
dissatisfied ... 5 = very satisfied), the usual "top-two-box" rate.  Intervals are Wilson score
intervals (Wilson 1927, JASA 22:209); with weights, the weighted rate and Kish's effective
sample size n_eff = (sum w)^2 / sum w^2 (Kish 1965, *Survey Sampling*) take the place of the
plain rate and n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from citywatch.analytics.scope import ALL, jurisdiction_sort_key
from citywatch.errors import DataError, NotFoundError, ValidationError

__all__ = ["SATISFIED_ANSWERS", "SurveyResult", "read_survey", "satisfaction", "wilson_interval"]

#: Answers counted as satisfied on the 5-point scale.
SATISFIED_ANSWERS = (4, 5)
_REQUIRED = ("respondent", "area", "answer")


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Parameters
    ----------
    successes : float
        Number (or weighted number) of successes.
    n : float
        Sample size (or effective sample size); must be positive.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    (float, float)
        Lower and upper bound.
    """
    if n <= 0:
        raise ValidationError("a confidence interval needs at least one response")
    if not 0 < confidence < 1:
        raise ValidationError("the confidence level must lie between 0 and 1", field="confidence")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def read_survey(path: str | Path) -> pd.DataFrame:
    """Read and check a survey CSV (columns respondent, area, answer, optional weight).

    Parameters
    ----------
    path : str or pathlib.Path
        CSV file with a header row.

    Returns
    -------
    pandas.DataFrame
        Columns ``respondent`` (str), ``area`` (str), ``answer`` (int 1-5), ``weight`` (float,
        1.0 when the file has no weight column).

    Raises
    ------
    NotFoundError
        If the file does not exist.
    DataError
        On a missing column, a blank or out-of-scale answer, a bad weight or a repeated
        respondent; the message names the CSV line numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"survey file {path} not found")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    raw.columns = [c.strip().lower() for c in raw.columns]
    missing = [c for c in _REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    lines = raw.index.to_numpy() + 2  # header is line 1
    answer = pd.to_numeric(raw["answer"].str.strip(), errors="coerce")
    bad = ~answer.isin([1, 2, 3, 4, 5])
    _refuse(path, lines, bad, "answers must be whole numbers from 1 to 5")
    blank = raw["area"].str.strip().eq("") | raw["respondent"].str.strip().eq("")
    _refuse(path, lines, blank, "respondent and area must not be blank")
    if "weight" in raw.columns:
        weight = pd.to_numeric(raw["weight"].str.strip(), errors="coerce")
        _refuse(path, lines, ~(weight > 0) | ~np.isfinite(weight), "weights must be positive")
    else:
        weight = pd.Series(1.0, index=raw.index)
    dup = raw["respondent"].str.strip().duplicated(keep=False)
    _refuse(path, lines, dup, "each respondent may answer once")
    return pd.DataFrame(
        {
            "respondent": raw["respondent"].str.strip(),
            "area": raw["area"].str.strip(),
            "answer": answer.astype(int),
            "weight": weight.astype(float),
        }
    )


def _refuse(path: Path, lines: np.ndarray, mask: pd.Series, what: str) -> None:
    if mask.any():
        shown = ", ".join(str(n) for n in lines[mask.to_numpy()][:10])
        more = "" if mask.sum() <= 10 else f" and {int(mask.sum()) - 10} more"
        raise DataError(f"{path}: {what} (line(s) {shown}{more})")


@dataclass
class SurveyResult:
    """Satisfaction by area (and ``all``).

    ``table`` columns: ``area``, ``responses``, ``satisfied``, ``rate``, ``ci_low``,
    ``ci_high``, ``weighted_rate``, ``n_eff``; the interval belongs to ``weighted_rate``,
    which equals ``rate`` when the file has no weights.
    """

    confidence: float
    weighted: bool
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "confidence": self.confidence,
            "weighted": self.weighted,
            "rows": self.table.to_dict(orient="records"),
            "notes": self.notes,
        }


def satisfaction(responses: pd.DataFrame, confidence: float = 0.95) -> SurveyResult:
    """Satisfaction rate (answers 4-5) with a Wilson confidence interval, by area and overall.

    Parameters
    ----------
    responses : pandas.DataFrame
        As returned by :func:`read_survey`.
    confidence : float
        Two-sided confidence level of the interval.

    Returns
    -------
    SurveyResult
    """
    if responses.empty:
        raise DataError("the survey has no responses")
    weighted = bool((responses["weight"] != 1.0).any())
    areas = sorted(responses["area"].unique(), key=jurisdiction_sort_key)
    rows = []
    for area in [ALL, *areas]:
        part = responses if area == ALL else responses[responses["area"] == area]
        happy = part["answer"].isin(SATISFIED_ANSWERS).to_numpy()
        w = part["weight"].to_numpy()
        p_w = float((w * happy).sum() / w.sum())
        n_eff = float(w.sum() ** 2 / (w * w).sum())
        low, high = wilson_interval(p_w * n_eff, n_eff, confidence)
        rows.append(
            {
                "area": area,
                "responses": len(part),
                "satisfied": int(happy.sum()),
                "rate": float(happy.mean()),
                "ci_low": low,
                "ci_high": high,
                "weighted_rate": p_w,
                "n_eff": n_eff,
            }
        )
    notes = [
        f"satisfied = answer {' or '.join(map(str, SATISFIED_ANSWERS))} on the 5-point scale",
        f"{confidence:.0%} Wilson score interval"
        + (" with Kish's effective sample size" if weighted else ""),
    ]
    return SurveyResult(confidence, weighted, pd.DataFrame(rows), notes)
