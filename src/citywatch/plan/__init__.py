"""Patrol deployment planning: coverage optimisation, the hypercube queueing model, staffing."""
