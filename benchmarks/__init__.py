"""Benchmarks comparing durable-workflows with DBOS Transact on the same database.

Run with ``bash benchmarks/run.sh`` (creates ``benchmarks/.venv``) or, inside a venv that
already holds both libraries, ``python -m benchmarks``. See ``benchmarks/README.md``.
"""
