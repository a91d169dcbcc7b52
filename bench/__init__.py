"""Benchmark scripts (run as `.venv/bin/python bench/<script>.py`) and the helpers they share."""
