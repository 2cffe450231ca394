"""fastem: a high-performance numerical engine for computational electron microscopy."""
from ._version import __version__
from . import backend, config, errors, fft
from . import data, io
from . import scan
from .backend import Device, get_array_module, get_device, to_device
from .config import set_threads
from . import phase
from . import tomo
from . import cluster
from . import optim
from . import train
