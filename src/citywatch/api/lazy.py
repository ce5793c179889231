"""Services of the application made on first use: one per app, made once under a lock.

The routers of the surveillance side (sensors, sightings, e-bikes) build their services on the
dispatch service's database only when a request first needs them, so an app that never serves
them never builds them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar, cast

from fastapi import FastAPI

__all__ = ["app_service"]

_T = TypeVar("_T")
_LOCK = threading.Lock()


def app_service(app: FastAPI, name: str, make: Callable[[], _T]) -> _T:
    """The service kept as ``app.state.<name>``, made by ``make()`` on first use.

    Parameters
    ----------
    app : FastAPI
        The application.
    name : str
        The attribute of ``app.state`` that holds the service.
    make : callable
        Builds the service (called at most once per app).

    Returns
    -------
    object
        The service.
    """
    state = app.state
    with _LOCK:
        if getattr(state, name, None) is None:
            setattr(state, name, make())
    return cast(_T, getattr(state, name))
