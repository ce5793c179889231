"""Hotspot forecasting."""
