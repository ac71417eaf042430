"""Offline analyses of a run's measurement table (predictor quality, ...)."""
