"""The command-centre web dashboard: static files only (``static/``), no Python code.

The service serves them (:mod:`citywatch.api.app`); the routes they call live in
:mod:`citywatch.api.dashboard`.
"""
