"""Placement solvers (OR-Tools): pure functions from a Problem dataclass to a Solution."""
