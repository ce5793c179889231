"""Key performance indicators of simulation runs, with confidence intervals across replications.

Each KPI is computed once per replication; the reported value is the mean over replications and
the 95 % interval is Student's *t* on those replication means (independent replications are the
textbook way to get valid intervals from correlated within-run observations; Law, *Simulation
Modeling and Analysis*, 5th ed., section 9.4).  A comparison of two scenarios run with the same
seed and number of replications pairs replication *r* of one with replication *r* of the other
(common random numbers) and gives the *t* interval of the paired differences; otherwise Welch's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from citywatch.dispatch.kpis import RESPONSE_TARGETS_S

__all__ = [
    "KPI_LABELS",
    "compare",
    "format_kpi",
    "kpis_by",
    "replication_kpis",
    "summarise",
    "utilisation",
]

#: KPI keys and their labels, in display order.
KPI_LABELS: dict[str, str] = {
    "incidents": "incidents",
    "on_scene_3min": "share on scene within 3 min",
    "on_scene_10min": "share on scene within 10 min",
    "mean_response_s": "mean response (s)",
    "p50_response_s": "median response (s)",
    "p90_response_s": "90th percentile response (s)",
    "share_waited": "share that waited for a unit",
    "mean_queue_wait_s": "mean queue wait (s)",
    "share_other_station": "share answered by another station's unit",
    "share_unanswered": "share unanswered",
    "utilisation": "unit utilisation",
}


def _incident_kpis(inc: pd.DataFrame) -> dict[str, float]:
    n = len(inc)
    resp = inc["response_s"].to_numpy(float)
    ok = np.isfinite(resp)
    wait = inc["queue_wait_s"].to_numpy(float)
    waited = np.isfinite(wait)
    other = inc.loc[ok & inc["station"].notna().to_numpy(), "other_station"]
    reached = np.nan_to_num(resp, nan=np.inf)
    centre_s, city_s = RESPONSE_TARGETS_S
    return {
        "incidents": float(n),
        "on_scene_3min": float(np.mean(ok & (reached <= centre_s))) if n else np.nan,
        "on_scene_10min": float(np.mean(ok & (reached <= city_s))) if n else np.nan,
        "mean_response_s": float(resp[ok].mean()) if ok.any() else np.nan,
        "p50_response_s": float(np.percentile(resp[ok], 50)) if ok.any() else np.nan,
        "p90_response_s": float(np.percentile(resp[ok], 90)) if ok.any() else np.nan,
        "share_waited": float(np.mean(wait[waited] > 1e-9)) if waited.any() else np.nan,
        "mean_queue_wait_s": float(wait[waited].mean()) if waited.any() else np.nan,
        "share_other_station": float(other.mean()) if len(other) else np.nan,
        "share_unanswered": float(np.mean(~ok)) if n else np.nan,
    }


def utilisation(units: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Busy time over on-duty time per replication, overall or by ``unit_id``/``station``."""
    keys = ["replication"] if by is None else ["replication", by]
    g = units.groupby(keys)[["busy_s", "on_duty_s"]].sum()
    return (
        (g["busy_s"] / g["on_duty_s"].where(g["on_duty_s"] > 0)).rename("utilisation").reset_index()
    )


def replication_kpis(incidents: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """One row of KPIs per replication (columns: :data:`KPI_LABELS`)."""
    rows = {rep: _incident_kpis(inc) for rep, inc in incidents.groupby("replication")}
    for rep in units["replication"].unique():
        rows.setdefault(int(rep), _incident_kpis(incidents.iloc[0:0]))
    out = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    util = utilisation(units).set_index("replication")["utilisation"]
    out["utilisation"] = util.reindex(out.index).to_numpy()
    out.index.name = "replication"
    return out[list(KPI_LABELS)]


def _ci(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and the 95 % Student-t interval of replication values (NaN bounds for one value)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def summarise(per_rep: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % interval of every KPI column across replications."""
    rows = [(k, *_ci(per_rep[k].to_numpy(float))) for k in per_rep.columns]
    return pd.DataFrame(rows, columns=["kpi", "mean", "ci_low", "ci_high"]).set_index("kpi")


def kpis_by(incidents: pd.DataFrame, key: str | Callable[[pd.DataFrame], Any]) -> pd.DataFrame:
    """KPIs per group (``"station"``, ``"zone"``, or a function such as the local hour).

    Returns
    -------
    pandas.DataFrame
        Index: the group; columns ``(kpi, "mean" | "ci_low" | "ci_high")``.
    """
    groups = incidents[key] if isinstance(key, str) else key(incidents)
    rows = {}
    for value, part in incidents.groupby(groups, dropna=True):
        per_rep = pd.DataFrame(
            {rep: _incident_kpis(inc) for rep, inc in part.groupby("replication")}
        ).T
        rows[value] = summarise(per_rep).stack()
    return pd.DataFrame(rows).T


def compare(a: pd.DataFrame, b: pd.DataFrame, *, paired: bool) -> pd.DataFrame:
    """B minus A for every KPI, with its 95 % interval.

    Parameters
    ----------
    a, b : pandas.DataFrame
        Per-replication KPIs (:func:`replication_kpis`) of the two scenarios.
    paired : bool
        Whether replication *r* of A and of B share their random numbers (same seed and number
        of replications): then the interval is that of the paired differences.

    Returns
    -------
    pandas.DataFrame
        Index KPI; columns ``a``, ``b``, ``diff``, ``ci_low``, ``ci_high``.
    """
    rows = []
    for k in KPI_LABELS:
        x, y = a[k].to_numpy(float), b[k].to_numpy(float)
        if paired and len(x) == len(y):
            d = y - x
            mean, lo, hi = _ci(d)
        else:
            xs, ys = x[np.isfinite(x)], y[np.isfinite(y)]
            mean = float(ys.mean() - xs.mean()) if len(xs) and len(ys) else np.nan
            if len(xs) > 1 and len(ys) > 1:
                vx, vy = xs.var(ddof=1) / len(xs), ys.var(ddof=1) / len(ys)
                se = np.sqrt(vx + vy)
                dof = (
                    (vx + vy) ** 2 / (vx**2 / (len(xs) - 1) + vy**2 / (len(ys) - 1))
                    if se > 0
                    else 1
                )
                half = float(stats.t.ppf(0.975, dof) * se)
                lo, hi = mean - half, mean + half
            else:
                lo = hi = np.nan
        rows.append(
            (
                k,
                float(np.nanmean(x)) if np.isfinite(x).any() else np.nan,
                float(np.nanmean(y)) if np.isfinite(y).any() else np.nan,
                mean,
                lo,
                hi,
            )
        )
    return pd.DataFrame(rows, columns=["kpi", "a", "b", "diff", "ci_low", "ci_high"]).set_index(
        "kpi"
    )


def format_kpi(kpi: str, value: float | None) -> str:
    """A KPI value for people: shares as percentages, durations and counts rounded."""
    if value is None or not np.isfinite(value):
        return "–"
    if kpi.startswith(("on_scene", "share", "utilisation")):
        return f"{100 * value:.1f} %"
    return f"{value:,.0f}" if abs(value) >= 10 else f"{value:.2f}"
