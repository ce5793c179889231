"""Discrete-event simulation of a city's incidents under a fleet and a dispatch policy."""
