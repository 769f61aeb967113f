"""Benchmarks behind `morphbias-fast bench ...` (bench/ at the project root holds their results)."""
