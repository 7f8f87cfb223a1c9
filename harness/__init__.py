"""hybridrec's process harness: real service and Redis processes on loopback ports.

Used by the test suite (``tests/``) and the benchmarks (``bench/``), which never import
each other. Not part of the installed package: it runs from a checkout.
"""
