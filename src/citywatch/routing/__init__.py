"""Travel times and distances over a city pack's road network, per travel mode."""
