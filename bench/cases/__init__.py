"""Benchmark cases: each module defines NAME, DESCRIPTION and run(ctx) (see fastem.benchmark)."""
