"""Tiny synthetic writers for read-only microscope formats (test inputs only).

RosettaSciIO has no writer for Gatan DM3/DM4, Thermo Fisher Velox EMD or TIA SER and does not ship its
test fixtures in the wheel, so these write the smallest files its readers accept, following the
layouts its readers parse (``rsciio.digitalmicrograph``, ``rsciio.emd._emd_velox``, ``rsciio.tia``):

* :func:`write_dm` -- DM3 or DM4: header, root tag group, ``ImageList/<group>/ImageData`` with
  ``Calibrations/Dimension`` (Origin, Scale, Units per axis, fastest axis first),
  ``Calibrations/Brightness``, ``Data``, ``DataType``, ``Dimensions``, ``PixelDepth``, plus an
  empty ``ImageTags`` group and a ``Name``.
* :func:`write_velox` -- Velox EMD: ``/Version`` (JSON), ``/Data/Image/<uuid>/Data`` stored
  ``(h, w, frames)`` and ``Metadata`` (JSON as uint8 columns, one per frame) with
  ``BinaryResult.PixelSize`` in metres.
* :func:`write_ser` -- TIA SER image series (see its docstring).
"""

from __future__ import annotations

import json
import struct

import numpy as np

_DM_TYPES = {np.dtype("int16"): 1, np.dtype("float32"): 2, np.dtype("uint8"): 6, np.dtype("int32"): 7,
             np.dtype("uint16"): 10, np.dtype("float64"): 12}
_ENC = {"f4": (6, "<f"), "i4": (3, "<l"), "u2": (4, "<H")}   # DM tag encodings: float, long, ushort


class _DMWriter:
    def __init__(self, version: int):
        self.v = version
        self.buf = bytearray()

    def lq(self, value: int) -> bytes:   # big-endian length/count field: 4 bytes (DM3) or 8 (DM4)
        return struct.pack(">q" if self.v == 4 else ">l", value)

    def group(self, name: str, items: list) -> bytes:
        body = bytes([0, 1]) + self.lq(len(items)) + b"".join(items)
        head = bytes([20]) + struct.pack(">h", len(name)) + name.encode()
        if self.v == 4:
            head += struct.pack(">q", len(body))   # DM4: the group's size
        return head + body

    def _data(self, name: str, info: list, payload: bytes) -> bytes:
        body = b"%%%%" + self.lq(len(info)) + b"".join(self.lq(i) for i in info) + payload
        head = bytes([21]) + struct.pack(">h", len(name)) + name.encode()
        if self.v == 4:
            head += struct.pack(">q", len(body))   # DM4: the tag's size (skipped by readers)
        return head + body

    def scalar(self, name: str, value, kind: str) -> bytes:
        enc, fmt = _ENC[kind]
        return self._data(name, [enc], struct.pack(fmt, value))

    def text(self, name: str, value: str) -> bytes:   # array of ushort characters
        return self._data(name, [20, 4, len(value)], struct.pack(f"<{len(value)}H", *map(ord, value)))

    def array(self, name: str, arr: np.ndarray) -> bytes:
        enc = {np.dtype("float32"): 6, np.dtype("int16"): 2, np.dtype("uint16"): 4, np.dtype("int32"): 3,
               np.dtype("uint8"): 10, np.dtype("float64"): 7}[arr.dtype]
        return self._data(name, [20, enc, arr.size], np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"))
                          .tobytes())


def write_dm(path, data: np.ndarray, scales, units, origins=None, *, version: int = 3, name: str = "image") -> None:
    """Write ``data`` (2D or 3D, NumPy order) as a DM3 / DM4 file.

    ``scales``, ``units``, ``origins`` are per NumPy axis; DM stores them fastest axis first and
    the origin in pixels (RosettaSciIO's offset = -origin * scale).
    """
    data = np.asarray(data)
    origins = origins if origins is not None else [0.0] * data.ndim
    w = _DMWriter(version)
    dims = [w.group("", [w.scalar("Origin", float(o), "f4"), w.scalar("Scale", float(s), "f4"), w.text("Units", u)])
            for s, u, o in reversed(list(zip(scales, units, origins)))]
    image_data = w.group("ImageData", [
        w.group("Calibrations", [
            w.group("Brightness", [w.scalar("Origin", 0.0, "f4"), w.scalar("Scale", 1.0, "f4"), w.text("Units", "")]),
            w.group("Dimension", dims)]),
        w.array("Data", data.reshape(-1)),
        w.scalar("DataType", _DM_TYPES[data.dtype], "i4"),
        w.group("Dimensions", [w.scalar("", n, "i4") for n in reversed(data.shape)]),
        w.scalar("PixelDepth", data.dtype.itemsize, "i4")])
    image = w.group("", [image_data, w.group("ImageTags", []), w.text("Name", name)])
    root = bytes([0, 1]) + w.lq(1) + w.group("ImageList", [image])
    size_fmt = ">q" if version == 4 else ">l"
    header = struct.pack(">l", version) + struct.pack(size_fmt, len(root) + 8) + struct.pack(">l", 1)
    with open(path, "wb") as fh:
        fh.write(header + root + b"\0" * 8)


def write_velox(path, frames: np.ndarray, pixel_size_m: float) -> None:
    """Write an image stack ``(n, h, w)`` (or an image) as a minimal Velox EMD file."""
    import h5py

    frames = np.asarray(frames)
    if frames.ndim == 2:
        frames = frames[None]
    n, h, w = frames.shape
    meta = {"BinaryResult": {"PixelSize": {"width": str(pixel_size_m), "height": str(pixel_size_m)},
                             "PixelUnitX": "m", "PixelUnitY": "m", "Detector": "HAADF"},
            "Core": {"MetadataDefinitionVersion": "7.9", "MetadataSchemaVersion": "v1/2013/07"},
            "Acquisition": {"AcquisitionStartDatetime": {"DateTime": "1700000000"}},
            "Detectors": {"Detector-0": {"DetectorName": "HAADF", "DetectorType": "ScanningDetector"}},
            "Optics": {"AccelerationVoltage": "300000"}, "Instrument": {"InstrumentModel": "Synthetic"},
            "Stage": {"AlphaTilt": "0", "BetaTilt": "0"}, "Scan": {"FrameTime": "0.5"}}
    text = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        f.create_dataset("Version", data=np.array([json.dumps({"format": "Velox", "version": 2}).encode()]))
        g = f.create_group("Data/Image/0123456789abcdef0123456789abcdef")
        g.create_dataset("Data", data=np.ascontiguousarray(np.moveaxis(frames, 0, -1)))
        g.create_dataset("Metadata", data=np.repeat(text[:, None], n, axis=1))


def write_ser(path, frames: np.ndarray, pixel_size_m: float, *, series_units: str = "", series_step: float = 1.0,
              series_offset: float = 0.0) -> None:
    """Write an image series ``(n, h, w)`` float32 as a minimal TIA ``.ser`` file (version 0x210,
    32-bit offsets, images of data type 7 = float32, time tags), as ``rsciio.tia`` parses it: the
    header, one dimension record (the series axis: size, offset, step, units), the offset arrays,
    then each image element (x/y calibration in metres, size, pixels stored bottom row first)
    followed by its tag."""
    frames = np.asarray(frames, dtype="<f4")
    n, h, w = frames.shape
    units = series_units.encode()
    dim = struct.pack("<IddII", n, series_offset, series_step, 0, 0) + struct.pack("<I", len(units)) + units
    header_len = 30 + len(dim)
    offsets_at = header_len
    first = offsets_at + 8 * n
    element = 8 + 8 + 4 + 8 + 8 + 4 + 2 + 4 + 4 + 4 * h * w
    tag = 8
    data_offsets = [first + i * (element + tag) for i in range(n)]
    tag_offsets = [o + element for o in data_offsets]
    out = bytearray(struct.pack("<HHHIIII", 0x4949, 0x0197, 0x0210, 0x4122, 0x4152, n, n))
    out += struct.pack("<II", offsets_at, 1) + dim
    out += struct.pack(f"<{n}I", *data_offsets) + struct.pack(f"<{n}I", *tag_offsets)
    for i in range(n):
        out += struct.pack("<ddIddIHII", 0.0, pixel_size_m, 0, 0.0, pixel_size_m, 0, 7, w, h)
        out += frames[i, ::-1, :].tobytes()
        out += struct.pack("<HHI", 0x4152, 0, 1700000000 + i)
    with open(path, "wb") as fh:
        fh.write(bytes(out))
