"""City packs: road network, jurisdictions, stations and places of one city."""
