"""fastem benchmarks (installed as ``fastem.bench``): case modules in ``cases/``, results in ``results/``.

Run with ``fastem bench [NAME ...]``; see :mod:`fastem.benchmark` for the harness.
"""
