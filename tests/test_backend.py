"""Devices, array modules, optional-dependency probes."""

import numpy as np
import pytest

from fastem import backend
from fastem.backend import Device
from fastem.errors import DeviceUnavailableError


def test_cpu_device_basics():
    d = Device("cpu")
    assert d.is_cpu and not d.is_gpu and d.id == -1
    assert d.xp is np
    assert str(d) == "cpu" and d == Device(-1) == Device(None) == "cpu"
    assert "cores" in d.name
    with d.use():
        pass
    assert hash(d) == hash(Device(-1))


@pytest.mark.parametrize("spec", ["bogus", "cuda:x", "cuda:-1"])
def test_bad_device_strings(spec):
    with pytest.raises(ValueError, match="device"):
        Device(spec)


def test_auto_falls_back_to_cpu_without_gpu():
    d = Device("auto")
    assert d.is_gpu == backend.cupy_available()


@pytest.mark.skipif(backend.cupy_available(), reason="a GPU is present")
def test_gpu_request_without_gpu_is_a_clear_error():
    with pytest.raises(DeviceUnavailableError, match="GPU was requested"):
        Device("cuda")
    assert backend.gpu_unavailable_reason()


def test_array_module_and_device_of_numpy():
    a = np.ones(3)
    assert backend.get_array_module(a) is np
    assert backend.get_array_module(a, 1.0, None) is np
    assert backend.get_device(a) == Device("cpu")
    assert backend.to_device(a, "cpu") is a
    b = backend.to_device(a, "cpu", copy=True)
    assert b is not a and np.array_equal(a, b)


def test_optional_probes_are_cached():
    assert backend.optional_module("numpy") is np
    assert backend.optional_module("surely_not_a_module_fastem") is None
    assert isinstance(backend.torch_available(), bool)
    assert isinstance(backend.dask_available(), bool)


@pytest.mark.gpu
def test_round_trip_to_gpu(rng):
    a = rng.standard_normal((5, 7))
    g = backend.to_device(a, "cuda")
    assert backend.is_cupy_array(g) and backend.get_device(g) == Device("cuda:0")
    assert backend.get_array_module(g) is Device("cuda").xp
    assert backend.to_device(g, "cuda") is g
    np.testing.assert_array_equal(backend.to_device(g, "cpu"), a)


def test_to_host_returns_numpy_without_needless_copies(rng):
    from fastem.backend import to_host

    a = rng.standard_normal((3, 4))
    assert to_host(a) is a                                   # already on the host: no copy
    c = to_host(a, copy=True)
    assert c is not a and np.array_equal(c, a)
    f = to_host(a, np.float32)
    assert f.dtype == np.float32 and np.allclose(f, a, atol=1e-6)
    assert to_host([1.0, 2.0]).tolist() == [1.0, 2.0]


@pytest.mark.gpu
def test_to_host_copies_cupy_to_numpy(rng):
    cp = pytest.importorskip("cupy")
    from fastem.backend import cupy_available, to_host

    if not cupy_available():
        pytest.skip("no GPU")
    a = rng.standard_normal(7)
    h = to_host(cp.asarray(a))
    assert isinstance(h, np.ndarray) and np.array_equal(h, a)
