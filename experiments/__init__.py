"""Thin ``python -m experiments.<name>`` entry points: one config, one job each."""
