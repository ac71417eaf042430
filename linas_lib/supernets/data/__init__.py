"""Offline data sets of the built-in super-networks, each read from an installed wheel."""
