"""fastem.io.validate.as_numeric_array: the one numeric-array check at the API boundary (issue 18)."""

import numpy as np
import pytest

from fastem.errors import InputError
from fastem.io.validate import as_numeric_array


def test_passes_arrays_through_without_a_copy(rng):
    a = rng.standard_normal((3, 5))
    assert as_numeric_array(a, "x") is a
    assert as_numeric_array([[1, 2], [3, 4]], "x").shape == (2, 2)


@pytest.mark.parametrize("value,match", [
    (None, "x must be a numeric array, got NoneType"),
    ("abc", "x must be a numeric array, got str"),
    (np.array(["a", "b"]), "x must be a numeric array, got dtype <U1"),
    ([[1, 2], [3]], "x must be a numeric array \\("),
])
def test_refuses_with_one_line_naming_the_parameter(value, match):
    with pytest.raises(InputError, match=match):
        as_numeric_array(value, "x")


def test_kinds_and_expected_text():
    with pytest.raises(InputError, match="^mask must be a 0/1 array, got dtype complex128$"):
        as_numeric_array(np.ones(3, complex), "mask", kinds="biuf", expected="a 0/1 array")


def test_io_is_lazy_and_cheap():
    import subprocess
    import sys

    code = "import sys, fastem.io.validate; print('h5py' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
