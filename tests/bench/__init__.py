"""Benchmarks: standalone scripts that print figures (`python -m tests.bench.NAME`).

Not tests: no file here is named `test_*`, so pytest never collects them. See README.md.
"""
