"""Routing plugins: filters narrow the endpoints, scorers score them in [0,1], profile.py combines."""
