"""Tests of the python -m experiments.* entry points."""
