"""Benchmarks of the product, run with ``make bench`` (``python -m benchmarks.run``).

Each benchmark is a function ``(Context) -> Section`` in its own module; ``benchmarks.run``
lists them, runs them in order and writes docs/benchmarks.md. Shared machines are noisy, so
every benchmark reports medians over several runs and ratios against a reference measured in
the same run.
"""
