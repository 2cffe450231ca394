"""The partial-scan NumPy/SciPy oracle (spec reference implementation).

It lives in the kernels package (``fastem.kernels._scan_reference``) because the kernels' own
``engine="numpy"`` paths use it and kernels import nothing above them; this module keeps the
old import path working for the tests and benchmarks.
"""

from fastem.kernels import _scan_reference as _impl

globals().update({k: v for k, v in vars(_impl).items() if not k.startswith("__")})
