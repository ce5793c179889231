"""CityWatch: city police patrol command and dispatch, with planning and crime analytics."""

__version__ = "0.1.0"
