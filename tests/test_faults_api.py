"""API misuse of the engine's foundations and kernels: every public kernel and the device
layer answer None, lists, strings and unknown engines with a one-line ``InputError`` naming
the parameter, never an ``AttributeError`` from deep inside.

(Domain APIs -- phase, tomo, cluster, scan, io -- have their misuse tables in their own
``test_faults_<domain>.py`` files.)
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from fastem import backend, kernels
from fastem.errors import InputError

#: positional parameters of kernels that are scalars, not arrays
_SCALARS = {"a", "mode", "spacing", "u", "momentum", "step"}
#: positional array parameters documented as "or None"
_NONE_OK = {("sample_infill", "out_nearest")}


def _kernel_cases():
    for name in kernels.__all__:
        fn = getattr(kernels, name)
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
        arrays = [p.name for p in params if p.name not in _SCALARS]
        if arrays:
            yield pytest.param(name, params, arrays, id=name)


@pytest.mark.parametrize("name, params, arrays", list(_kernel_cases()))
@pytest.mark.parametrize("bad", [None, [1.0, 2.0, 3.0], "abc", 3.5])
def test_kernels_refuse_non_arrays_naming_the_parameter(rng, name, params, arrays, bad):
    fn = getattr(kernels, name)
    good = rng.random((2, 4, 4)).astype(np.float32)
    for target in arrays:  # each array parameter in turn gets the bad value, the others a valid array
        if bad is None and (name, target) in _NONE_OK:
            continue
        args = []
        for p in params:
            if p.name in _SCALARS:
                args.append(1)
            elif p.name == target:
                args.append(bad)
            else:
                args.append(good.copy())
        with pytest.raises(InputError) as info:
            fn(*args)
        msg = str(info.value)
        assert "\n" not in msg and name in msg


def test_unknown_engine_is_an_input_error(rng):
    x = (rng.random(8) + 1j * rng.random(8)).astype(np.complex64)
    with pytest.raises(InputError, match="unknown engine 'fortran'"):
        kernels.axpy_norm(1.0, x, x.copy(), engine="fortran")
    with pytest.raises(InputError, match="engine 'cuda' needs CuPy arrays"):
        kernels.axpy_norm(1.0, x, x.copy(), engine="cuda")


@pytest.mark.parametrize("spec, words", [
    ("gpu7", "bad device 'gpu7'"), ("cuda:x", "bad device 'cuda:x'"), ("cuda:-1", "GPU index must be >= 0"),
    (3.5, "cannot interpret 3.5"), ([0], "cannot interpret [0]"), (-2, "bad device id -2"),
])
def test_bad_devices_are_one_line_input_errors(spec, words):
    with pytest.raises(InputError, match=__import__("re").escape(words)):
        backend.Device(spec)
