"""City packs: road network, jurisdictions, stations and places of one city."""

from citywatch.city.build import build_pack
from citywatch.city.bundled import BUNDLED, build_bundled, load_pack
from citywatch.city.network import RoadNetwork
from citywatch.city.pack import LEVELS, CityPack, Jurisdiction, Place, Station, read_pack

__all__ = [
    "BUNDLED",
    "LEVELS",
    "CityPack",
    "Jurisdiction",
    "Place",
    "RoadNetwork",
    "Station",
    "build_bundled",
    "build_pack",
    "load_pack",
    "read_pack",
]
