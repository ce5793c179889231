"""Chinese map coordinate systems: GCJ-02 (Amap, Tencent) and BD-09 (Baidu) to and from WGS-84.

GCJ-02 is the obfuscated datum that Chinese law requires for published maps; it shifts points by
a few hundred metres with a smooth, non-linear offset.  BD-09 is Baidu's further offset of GCJ-02.
The forward transforms below follow the widely published formulas (Krasovsky 1940 ellipsoid,
semi-major axis 6378245 m, eccentricity squared 0.00669342162296594323); the inverse has no closed
form and is computed by fixed-point iteration to below 1e-9 degrees.  Points outside mainland China
are not shifted by GCJ-02, as the real datum does not shift them either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CoordinateSystem",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

CoordinateSystem = Literal["wgs84", "gcj02", "bd09"]
Array = npt.NDArray[np.float64]

_A = 6378245.0  # Krasovsky 1940 semi-major axis (m)
_EE = 0.00669342162296594323  # Krasovsky 1940 first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # Baidu's BD-09 rotation constant


def _outside_china(lon: Array, lat: Array) -> npt.NDArray[np.bool_]:
    # The rough bounding box used by every GCJ-02 implementation; outside it there is no offset.
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(lon: Array, lat: Array) -> tuple[Array, Array]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    outside = _outside_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 longitude/latitude (degrees) to GCJ-02.

    Parameters
    ----------
    lon, lat : array_like
        WGS-84 coordinates in degrees (scalars or arrays of equal shape).

    Returns
    -------
    tuple of ndarray
        GCJ-02 longitude and latitude.
    """
    lon_a, lat_a = _arrays(lon, lat)
    dlon, dlat = _offset(lon_a, lat_a)
    return lon_a + dlon, lat_a + dlat


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]], lon: Array, lat: Array
) -> tuple[Array, Array]:
    # Fixed-point iteration x <- x - (f(x) - target): the offsets are small and smooth, so it
    # converges to machine precision in a handful of steps.
    x, y = lon.copy(), lat.copy()
    for _ in range(30):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if np.all(np.abs(ex) < 1e-11) and np.all(np.abs(ey) < 1e-11):
            break
    return x, y


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 longitude/latitude to WGS-84 by fixed-point iteration (error < 1e-9°).

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 coordinates in degrees.

    Returns
    -------
    tuple of ndarray
        WGS-84 longitude and latitude.
    """
    return _invert(wgs84_to_gcj02, *_arrays(lon, lat))


def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 to Baidu's BD-09."""
    x, y = _arrays(lon, lat)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert Baidu's BD-09 to GCJ-02 (exact inverse of :func:`gcj02_to_bd09`, iterated)."""
    return _invert(gcj02_to_bd09, *_arrays(lon, lat))


def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert WGS-84 to BD-09 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 to WGS-84 (through GCJ-02)."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def to_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, system: CoordinateSystem
) -> tuple[Array, Array]:
    """Convert coordinates given in ``system`` to WGS-84 (identity for ``"wgs84"``)."""
    if system == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if system == "bd09":
        return bd09_to_wgs84(lon, lat)
    return _arrays(lon, lat)


def from_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, system: CoordinateSystem
) -> tuple[Array, Array]:
    """Convert WGS-84 coordinates to ``system`` for display on a Chinese base map."""
    if system == "gcj02":
        return wgs84_to_gcj02(lon, lat)
    if system == "bd09":
        return wgs84_to_bd09(lon, lat)
    return _arrays(lon, lat)
