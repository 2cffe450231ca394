"""A quick look at any input or output as a picture (``fastem show FILE[:/ds] -o PICTURE.png``).

What is drawn (one panel per image or curve):

================================= =====================================================
input                             panels
================================= =====================================================
image ``(h, w)``                  the image (a diffraction pattern on a log scale)
image stack ``(N, h, w)``         a montage of the first ``max_images`` images
volume ``(z, y, x)``              three orthogonal central slices (xy, xz, yz)
1D array                          a curve (R-factor / loss histories: log y-axis)
CXI diffraction data              log scale (2D) or log central slices (3D)
CXI reconstruction                ``|object|`` (slices for 3D) + R-factor history
Data Exchange projections/volume  montage / orthogonal slices (+ R-factor history)
``fastem scan`` outputs           montage of ``/scan/completed`` or ``/scan/partial``
``fastem cluster`` output         the (Ny, Nx) label map of a scan (one colour per cluster)
                                  beside the centroids as images (``image_shape``), else curves
EMD / MRC / TIFF / DM / ...       as above from :func:`fastem.io.read_image_data`
================================= =====================================================

An MRC file is a volume unless its header marks an image stack (``ispg = 0``); a 3D array
from other files is a volume when its first axis is named ``z``. The number of panels is
written into the PNG (text chunk ``fastem-panels``) and returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Panel", "ShowResult", "plan_panels", "show", "PICTURE_SUFFIXES"]

PICTURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
_HISTORY_WORDS = ("history", "loss", "r_factor", "rmse", "objective")


@dataclass
class Panel:
    """One panel: ``kind`` ``"image"`` (2D ``data``) or ``"curve"`` (1D ``data``); ``cmap``: the
    matplotlib colour map of an image (default gray; a qualitative one for labels)."""

    kind: str
    data: np.ndarray
    title: str = ""
    log: bool = False
    cmap: str | None = None


@dataclass
class ShowResult:
    """What :func:`show` drew: the picture, its panels and a one-line description."""

    path: Path
    panels: list = field(default_factory=list)
    description: str = ""


def _real(arr: np.ndarray, title: str) -> tuple[np.ndarray, str]:
    arr = np.asarray(arr)
    if np.iscomplexobj(arr):
        return np.abs(arr), f"|{title}|"
    if arr.dtype == bool:
        return arr.astype(np.float32), title
    return arr, title


def _image_panels(arr, title: str, *, log: bool = False, volume: bool | None = None, max_images: int = 16):
    if np.iscomplexobj(arr) and not log and np.ndim(arr) in (2, 3):
        # a complex object (phase retrieval --complex): its modulus and its phase (radians, 0 where
        # the modulus is below 5 % of its maximum, where the phase is noise)
        mag = np.abs(np.asarray(arr))
        phase = np.where(mag > 0.05 * mag.max(), np.angle(arr), 0.0)
        return (_image_panels(mag, f"|{title}|", volume=volume, max_images=max_images)
                + _image_panels(phase, f"arg {title} (rad)", volume=volume, max_images=max_images))
    arr, title = _real(arr, title)
    if arr.ndim == 1:
        return [Panel("curve", arr.astype(np.float64), title, log=_is_history(title))]
    if arr.ndim == 2:
        return [Panel("image", arr, f"{title} {arr.shape[0]}x{arr.shape[1]}", log)]
    if arr.ndim == 3:
        if volume:
            z, y, x = (s // 2 for s in arr.shape)
            return [Panel("image", arr[z], f"{title} xy (z={z})", log),
                    Panel("image", arr[:, y, :], f"{title} xz (y={y})", log),
                    Panel("image", arr[:, :, x], f"{title} yz (x={x})", log)]
        n = min(arr.shape[0], max_images)
        more = f" of {arr.shape[0]}" if arr.shape[0] > n else ""
        return [Panel("image", arr[i], f"{title} [{i}{more if i == n - 1 else ''}]", log) for i in range(n)]
    if arr.ndim == 4:  # 4D-STEM (Ny, Nx, ky, kx): the mean pattern and the virtual bright field
        return [Panel("image", arr.mean(axis=(0, 1)), f"{title} mean pattern", True),
                Panel("image", arr.sum(axis=(2, 3)), f"{title} total intensity map", False)]
    raise InputError(f"{title}: cannot show a {arr.ndim}D array (shape {arr.shape})")


def _is_history(name: str) -> bool:
    return any(w in name.lower() for w in _HISTORY_WORDS)


def _history_panels(f, max_curves: int = 4) -> list[Panel]:
    """1D numeric datasets whose names say history / loss / R-factor, anywhere in the file."""
    import h5py

    found: list[Panel] = []

    def visit(name, obj):
        if len(found) < max_curves and isinstance(obj, h5py.Dataset) and obj.ndim == 1 and obj.shape[0] > 1 \
                and obj.dtype.kind in "iuf" and _is_history(name.rsplit("/", 1)[-1]) and "checkpoint" not in name:
            found.append(Panel("curve", np.asarray(obj[()], np.float64), name.rsplit("/", 1)[-1], log=True))

    f.visititems(visit)
    return found


def _h5_plan(p: Path, dataset: str | None, max_images: int) -> tuple[list[Panel], str]:
    import h5py

    from .hdf5 import find_dataset, open_h5

    with open_h5(p) as f:
        if dataset is not None:
            from .emd import _array_groups

            key = "/" + dataset.strip("/")
            groups = _array_groups(f)
            if key in groups or (key.endswith("/data") and key[:-5] in groups):
                from .emd import read_emd

                e = read_emd(p, key[:-5] if key not in groups else key)
                vol = e.data.ndim == 3 and e.dims[0].name == "z"
                return _image_panels(e.data, e.name, volume=vol, max_images=max_images), f"EMD array {e.group}"
            ds = find_dataset(f, dataset, file_label=str(p))
            arr = np.asarray(ds[()])
            name = ds.name
            diffraction = ("cxi_version" in f or "entry_1" in f) and ("data_1" in name or "detector_1" in name)
            axes = ds.attrs.get("axes", b"")
            axes = axes.decode() if isinstance(axes, bytes) else str(axes)
            return (_image_panels(arr, name, log=diffraction, volume=axes.startswith("z:") or None,
                                  max_images=max_images), f"dataset {name}")
        hist = _history_panels(f)
        if isinstance(f.get("/entry_1/image_1/data"), h5py.Dataset):
            obj = np.asarray(f["/entry_1/image_1/data"][()])
            return (_image_panels(obj, "object", volume=obj.ndim == 3, max_images=max_images) + hist,
                    "CXI reconstruction")
        if "cxi_version" in f or "entry_1" in f:
            from .cxi import _find_data

            ds = _find_data(f, p)
            arr = np.asarray(ds[()])
            return _image_panels(arr, "diffraction", log=True, volume=arr.ndim == 3), "CXI diffraction (log scale)"
        ex = f.get("/exchange/data")
        if isinstance(ex, h5py.Dataset):
            axes = ex.attrs.get("axes", b"")
            axes = axes.decode() if isinstance(axes, bytes) else str(axes)
            arr = np.asarray(ex[()])
            if axes.startswith("z:"):
                return _image_panels(arr, "volume", volume=True) + hist, "Data Exchange volume"
            return _image_panels(arr, "projection", volume=False, max_images=max_images), "Data Exchange projections"
        for name, what in (("/scan/completed", "completed scans"), ("/scan/partial", "partial scans")):
            if isinstance(f.get(name), h5py.Dataset):
                return _image_panels(f[name][()], name.rsplit("/", 1)[-1], volume=False,
                                     max_images=max_images), what
        c = f.get("/cluster/centroids")
        if isinstance(c, h5py.Dataset):
            return _cluster_panels(f, c, max_images)
        if hist and not _is_image_file(f):
            return hist, "histories"
    from .inputs import read_image_data

    img = read_image_data(p)
    vol = img.data.ndim == 3 and img.axes[0].name == "z"
    return _image_panels(img.data, img.title or p.stem, volume=vol, max_images=max_images), img.reader


def _cluster_panels(f, c, max_images: int) -> tuple[list[Panel], str]:
    """A ``fastem cluster`` output: the (Ny, Nx) label map (a scan's) first, then the centroids
    as images (``image_shape``) or as curves."""
    import h5py

    panels: list[Panel] = []
    lm = f.get("/cluster/label_map")
    if isinstance(lm, h5py.Dataset) and lm.ndim == 2:
        labels = np.asarray(lm[()])
        k = int(c.shape[0])
        panels.append(Panel("image", labels, f"label map {labels.shape[0]}x{labels.shape[1]}, K={k}",
                            cmap="tab10" if k <= 10 else "tab20"))
    cent = np.asarray(c[()])
    shape = c.attrs.get("image_shape")
    if shape is not None:
        cent = cent.reshape((cent.shape[0], *np.asarray(shape, np.int64).tolist()))
    if cent.ndim == 3:
        panels += _image_panels(cent, "centroid", volume=False, max_images=max_images)
    else:
        panels += [Panel("curve", row.astype(np.float64), f"centroid {i}") for i, row in
                   enumerate(cent.reshape(cent.shape[0], -1)[:max_images])]
    return panels, "cluster label map and centroids" if len(panels) and panels[0].cmap else "cluster centroids"


def _is_image_file(f) -> bool:
    from .emd import is_emd

    return is_emd(f) or ("Version" in f and "Data" in f) or "Experiments" in f


def plan_panels(spec, *, max_images: int = 16) -> tuple[list[Panel], str]:
    """The panels :func:`show` draws for ``spec`` (``FILE`` or ``FILE.h5:/dataset``) and what the
    file was taken for."""
    from .hdf5 import _path_arg, is_hdf5, parse_ref, require_file
    from .mrc import MRC_SUFFIXES

    path, dataset = parse_ref(_path_arg(spec, "spec"))
    p = require_file(path)
    if is_hdf5(p):
        return _h5_plan(p, dataset, max_images)
    if dataset is not None:
        raise InputError(f"{p}: not an HDF5 file, so '{dataset}' cannot be shown")
    if p.suffix.lower() in (".tlt", ".rawtlt"):
        from .mrc import read_tlt

        return [Panel("curve", read_tlt(p), "tilt angle (degrees)")], "IMOD tilt angles"
    from .inputs import read_image_data

    img = read_image_data(p)
    if p.suffix.lower() in MRC_SUFFIXES:
        from .mrc import read_mrc_header

        header, _ = read_mrc_header(p, warn=False)
        vol = img.data.ndim == 3 and int(header.ispg) != 0
        return _image_panels(img.data, p.stem, volume=vol, max_images=max_images), \
            "MRC volume" if vol else "MRC image/stack"
    return _image_panels(img.data, img.title or p.stem, volume=False, max_images=max_images), img.reader


def show(spec, output, *, overwrite: bool = False, max_images: int = 16, inputs=()) -> ShowResult:
    """Draw ``spec`` into the picture ``output`` (PNG, PDF, SVG, JPEG; atomically).

    Parameters
    ----------
    spec : str or os.PathLike
        ``FILE`` or ``FILE.h5:/dataset`` of any format fastem reads.
    output : str or os.PathLike
        The picture; its extension picks the format.
    max_images : int
        Most images in a montage.

    Returns
    -------
    ShowResult
    """
    from .atomic import atomic_output
    from .hdf5 import _path_arg, parse_ref

    out = Path(_path_arg(output, "output"))
    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise InputError(f"{out}: a picture name ending in {', '.join(PICTURE_SUFFIXES)} is needed")
    if not isinstance(max_images, int) or max_images < 1:
        raise InputError(f"max_images must be an integer >= 1, got {max_images!r}")
    panels, what = plan_panels(spec, max_images=max_images)
    if not panels:
        raise InputError(f"{spec}: nothing to show")
    src, _ = parse_ref(_path_arg(spec, "spec"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    n = len(panels)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        data = np.asarray(panel.data)
        if panel.kind == "curve":
            finite = np.isfinite(data)
            ax.plot(np.arange(data.size)[finite], data[finite], lw=1)
            if panel.log and finite.any() and np.all(data[finite] > 0):
                ax.set_yscale("log")
            ax.set_xlabel("index")
        else:
            img = np.where(np.isfinite(data), data, np.nan).astype(np.float64)
            norm = None
            if panel.log:
                pos = img[img > 0]
                if pos.size:
                    norm = LogNorm(vmin=float(pos.min()), vmax=float(pos.max()))
                    img = np.where(img > 0, img, np.nan)
            ax.imshow(img, cmap=panel.cmap or "gray", norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(panel.title[:40] + (" (log)" if panel.log and panel.kind == "image" else ""), fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{Path(src).name}: {what}", fontsize=9)
    fig.tight_layout()
    with atomic_output(out, overwrite=overwrite, inputs=[src, *inputs]) as tmp:
        fmt = out.suffix.lower().lstrip(".").replace("jpg", "jpeg")
        kwargs = {"metadata": {"fastem-panels": str(n), "Software": "fastem show"}} if fmt == "png" else {}
        fig.savefig(tmp, format=fmt, dpi=100, **kwargs)
    plt.close(fig)
    return ShowResult(path=out, panels=panels, description=what)
