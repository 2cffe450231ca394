"""Synthetic atomic-resolution HAADF-STEM micrographs (seeded, any size, batched on CPU or GPU).

No STEM data set ships offline (spec ``partial_scan.md``, "Data"), so the partial-scan work
trains and tests on these. Each image is built from a seeded NumPy generator
(``default_rng([seed, index])``: image ``index`` is the same whatever the batch split):

* **crystal grains** -- a Voronoi tessellation into 1-4 grains, each a projected crystal
  structure (:data:`STRUCTURES`: fcc [001] and [110], rock salt [001], diamond [110] dumbbells,
  hcp [0001], MoS2-like honeycomb [0001], perovskite [001]) at a random in-plane rotation,
  translation and scale; a second phase in some grains;
* **Z-contrast** -- a column's peak intensity is ``sum Z^1.7`` of its atoms (HAADF contrast),
  its width the probe size (Gaussian, sigma ~0.3 of the nearest column spacing);
* **defects** -- vacancies and substitutions (random column intensities), small random
  displacements, disordered and depleted columns along grain boundaries;
* **amorphous regions** (smooth random blobs of randomly placed light atoms), sometimes a
  **vacuum** region, everywhere a **carbon-film** texture;
* **thickness ramps** -- a linear intensity gradient across the field;
* **scan distortions** -- scan-line jitter (a correlated horizontal shift per line) and slow
  drift (a shift growing linearly with scan time);
* **shot noise** -- Poisson counts at ``dose`` electrons per pixel (mean over the image).

The scene (a few thousand columns) is built on the host; the rendering (the heavy part) runs
in ``fastem.kernels.stem_render`` with Numba on the CPU or CUDA on the GPU. On the GPU the
shot noise is drawn with CuPy's generator, so noisy images differ from the CPU's (the
noise-free ones agree to float32 rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from fastem import backend
from fastem.errors import InputError

__all__ = ["STRUCTURES", "StemOptions", "StemGenerator", "generate_stem", "build_scene"]


def _z(*zs: float) -> float:
    """HAADF column weight: sum of Z^1.7 over the atoms in the column."""
    return float(sum(z ** 1.7 for z in zs))


@dataclass(frozen=True)
class Structure:
    """A projected crystal: cell vectors (units of the lattice parameter) and columns.

    ``basis`` holds ``(u, v, weight)``: fractional coordinates along ``a1, a2`` and the
    column's ``sum Z^1.7``. ``a_px``: the lattice parameter in pixels at magnification 1.
    """

    a1: tuple[float, float]
    a2: tuple[float, float]
    basis: tuple[tuple[float, float, float], ...]
    a_px: float


_R2 = 1.0 / math.sqrt(2.0)
_S3 = math.sqrt(3.0) / 2.0

#: Projected structures (zone axis in the name).
STRUCTURES: dict[str, Structure] = {
    "fcc_001": Structure((1, 0), (0, 1), ((0, 0, _z(79)), (0.5, 0.5, _z(79))), 15.0),           # Au
    "fcc_110": Structure((_R2, 0), (0, 1), ((0, 0, _z(29)), (0.5, 0.5, _z(29))), 20.0),          # Cu
    "rocksalt_001": Structure((1, 0), (0, 1), ((0, 0, _z(82)), (0.5, 0.5, _z(82)),                # PbTe
                                               (0.5, 0, _z(52)), (0, 0.5, _z(52))), 22.0),
    "diamond_110": Structure((_R2, 0), (0, 1), ((0, 0, _z(32)), (0, 0.25, _z(32)),               # Ge dumbbells
                                                (0.5, 0.5, _z(32)), (0.5, 0.75, _z(32))), 34.0),
    "hcp_0001": Structure((1, 0), (0.5, _S3), ((0, 0, _z(30)),), 10.0),                          # Zn
    "mos2_0001": Structure((1, 0), (0.5, _S3), ((1 / 3, 1 / 3, _z(42)), (2 / 3, 2 / 3, _z(16, 16))), 12.0),
    "perovskite_001": Structure((1, 0), (0, 1), ((0, 0, _z(38)), (0.5, 0.5, _z(22, 8)),          # SrTiO3
                                                 (0.5, 0, _z(8)), (0, 0.5, _z(8))), 18.0),
}


@dataclass(frozen=True)
class StemOptions:
    """Ranges of the random scene parameters (each image draws its own values).

    Lengths in pixels; probabilities per image; ``*_max`` are upper ends of uniform ranges.
    """

    structures: tuple[str, ...] = tuple(STRUCTURES)
    magnification: tuple[float, float] = (0.6, 1.8)   #: log-uniform factor on each structure's ``a_px``
    max_grains: int = 4
    second_phase: float = 0.3         #: probability that a grain has another structure than grain 0
    vacancy_max: float = 0.04
    substitution_max: float = 0.05
    displacement: float = 0.02        #: random column displacement, fraction of the lattice parameter
    boundary_width: float = 0.35      #: disordered band along grain boundaries, fraction of the lattice parameter
    amorphous: float = 0.5            #: probability of amorphous regions
    amorphous_fraction: tuple[float, float] = (0.05, 0.35)
    vacuum: float = 0.15              #: probability of a vacuum region (carbon film only)
    carbon: tuple[float, float] = (0.03, 0.15)   #: carbon-film texture amplitude, relative to the heaviest column
    thickness_gradient: float = 0.6   #: max relative intensity change across the field
    jitter_max: float = 0.5           #: px, std of the scan-line jitter
    drift_max: float = 6.0            #: px, drift over one frame

    def __post_init__(self):
        unknown = [s for s in self.structures if s not in STRUCTURES]
        if unknown or not self.structures:
            raise InputError(f"unknown structure(s) {unknown}; available: {', '.join(STRUCTURES)}")


@dataclass
class Scene:
    """One image's columns and distortions (host arrays) -- see :func:`build_scene`."""

    x: np.ndarray
    y: np.ndarray
    amp: np.ndarray
    sigma: np.ndarray
    jitter: np.ndarray
    drift: tuple[float, float]
    bg: np.ndarray
    info: dict = field(default_factory=dict)


BG_STEP = 4.0   #: px per background grid step
_NOISE_STREAM = 0x5407   #: third seed word of the per-image shot-noise generators
_CUTOFF = 3.5   #: column cut-off radius in sigmas


def _smooth_field(rng, shape, sigma) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)



def lattice_sites(base: np.ndarray, basis, cell: np.ndarray, shift) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions (px) and weights of every basis atom in every cell: ``(x, y, weight)``, (n,) each.

    ``base``: (m, 2) integer cell indices (float64); ``basis``: ``(u, v, weight)`` fractional
    coordinates of the atoms in a cell; ``cell``: (2, 2) lattice vectors (px) as columns of
    ``cell.T``; ``shift``: (2,) origin (px). Shared by the STEM and SSL synthetic generators.
    """
    xs, ys, ws = [], [], []
    for u, v, wgt in basis:
        p = (base + [u, v]) @ cell.T + shift
        xs.append(p[:, 0])
        ys.append(p[:, 1])
        ws.append(np.full(p.shape[0], wgt))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)

def _lattice(structure: Structure, a_px: float, angle: float, shift, lo, hi):
    """Column positions (x, y) and weights covering the box [lo, hi]^2 (px) of a rotated crystal."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    cell = a_px * rot @ np.array([structure.a1, structure.a2], dtype=np.float64).T   # columns a1, a2
    inv = np.linalg.inv(cell)
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]]) - shift
    frac = corners @ inv.T
    i0, j0 = np.floor(frac.min(axis=0)).astype(int) - 1
    i1, j1 = np.ceil(frac.max(axis=0)).astype(int) + 1
    ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1), indexing="ij")
    base = np.stack([ii.ravel(), jj.ravel()], axis=1).astype(np.float64)
    x, y, wgt = lattice_sites(base, structure.basis, cell, shift)
    keep = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
    return x[keep], y[keep], wgt[keep]


def _nearest_spacing(structure: Structure) -> float:
    """Smallest projected column separation, in units of the lattice parameter."""
    cell = np.array([structure.a1, structure.a2], dtype=np.float64).T
    pts = []
    for i in range(-1, 2):
        for j in range(-1, 2):
            for u, v, _ in structure.basis:
                pts.append(cell @ np.array([i + u, j + v]))
    pts = np.array(pts)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
    return float(d[d > 1e-9].min())


def build_scene(shape, rng: np.random.Generator, options: StemOptions = StemOptions()) -> Scene:
    """Draw one image's scene: columns (position, peak, width), line jitter, drift, background."""
    h, w = shape
    o = options
    jitter_std = rng.uniform(0.0, o.jitter_max)
    e = rng.standard_normal(h)
    jitter = np.empty(h)
    acc = 0.0
    for r in range(h):   # AR(1) line jitter, correlation 0.9 between consecutive lines
        acc = 0.9 * acc + math.sqrt(1 - 0.81) * e[r]
        jitter[r] = jitter_std * acc
    drift_mag = rng.uniform(0.0, o.drift_max)
    drift_dir = rng.uniform(0.0, 2 * math.pi)
    drift = (drift_mag * math.cos(drift_dir), drift_mag * math.sin(drift_dir))
    mag = math.exp(rng.uniform(math.log(o.magnification[0]), math.log(o.magnification[1])))

    n_grains = int(rng.integers(1, o.max_grains + 1))
    seeds = rng.uniform([0, 0], [w, h], size=(n_grains, 2))
    first = str(rng.choice(o.structures))
    names = [first if (g == 0 or rng.random() >= o.second_phase) else str(rng.choice(o.structures))
             for g in range(n_grains)]
    margin = 12.0 + 4.0 * o.jitter_max + o.drift_max
    lo, hi = (-margin, -margin), (w + margin, h + margin)

    xs, ys, amps, sigmas = [], [], [], []
    peak = max(b[2] for s in set(names) for b in STRUCTURES[s].basis)
    for g, name in enumerate(names):
        st = STRUCTURES[name]
        a_px = st.a_px * mag
        x, y, wgt = _lattice(st, a_px, rng.uniform(0, 2 * math.pi), rng.uniform([0, 0], [a_px, a_px]), lo, hi)
        p = np.stack([x, y], axis=1)
        d2 = ((p[:, None, :] - seeds[None]) ** 2).sum(-1)
        mine = np.argmin(d2, axis=1) == g
        p, wgt = p[mine], wgt[mine]
        # distance to the nearest other grain's boundary (Voronoi bisectors)
        dist = np.full(p.shape[0], np.inf)
        for j in range(n_grains):
            if j != g:
                nrm = seeds[j] - seeds[g]
                ln = np.linalg.norm(nrm)
                dist = np.minimum(dist, ((0.5 * (seeds[g] + seeds[j]) - p) @ nrm) / ln)
        n = p.shape[0]
        keep = rng.random(n) >= rng.uniform(0, o.vacancy_max)
        sub = rng.random(n) < rng.uniform(0, o.substitution_max)
        wgt = np.where(sub, wgt * rng.uniform(0.3, 2.0, n), wgt)
        wgt = wgt * (1.0 + 0.05 * rng.standard_normal(n))
        p = p + rng.normal(0, o.displacement * a_px, p.shape)
        band = dist < o.boundary_width * a_px
        keep &= ~(band & (rng.random(n) < 0.5))
        p[band] += rng.normal(0, 0.15 * a_px, (int(band.sum()), 2))
        wgt[band] *= rng.uniform(0.4, 0.9, int(band.sum()))
        sigma = max(0.9, 0.3 * _nearest_spacing(st) * a_px) * rng.uniform(0.9, 1.15)
        xs.append(p[keep, 0])
        ys.append(p[keep, 1])
        amps.append(wgt[keep] / peak)
        sigmas.append(np.full(int(keep.sum()), sigma))
    x, y = np.concatenate(xs), np.concatenate(ys)
    amp, sig = np.concatenate(amps), np.concatenate(sigmas)
    sig_mean = float(sig.mean()) if sig.size else 1.5

    # amorphous regions (smooth blobs) and a vacuum half-plane
    info = {"structures": names, "grains": n_grains, "magnification": mag, "jitter_std": jitter_std,
            "drift": drift, "amorphous_fraction": 0.0, "vacuum": False}
    coarse = (max(4, h // 32), max(4, w // 32))
    if rng.random() < o.amorphous:
        frac = rng.uniform(*o.amorphous_fraction)
        fld = _smooth_field(rng, coarse, 1.0)
        thr = np.quantile(fld, 1.0 - frac)
        def inside(px, py):
            cy = np.clip(py / h * coarse[0] - 0.5, 0, coarse[0] - 1)
            cx = np.clip(px / w * coarse[1] - 0.5, 0, coarse[1] - 1)
            return ndimage.map_coordinates(fld, [cy, cx], order=1, mode="nearest") > thr
        drop = inside(x, y)
        x, y, amp, sig = x[~drop], y[~drop], amp[~drop], sig[~drop]
        n_am = int((w + 2 * margin) * (h + 2 * margin) / (1.3 * sig_mean) ** 2)
        px = rng.uniform(lo[0], hi[0], n_am)
        py = rng.uniform(lo[1], hi[1], n_am)
        am = inside(px, py)
        x = np.concatenate([x, px[am]])
        y = np.concatenate([y, py[am]])
        amp = np.concatenate([amp, rng.uniform(0.02, 0.09, int(am.sum()))])
        sig = np.concatenate([sig, sig_mean * rng.uniform(1.1, 1.6, int(am.sum()))])
        info["amorphous_fraction"] = frac
    if rng.random() < o.vacuum:
        ang = rng.uniform(0, 2 * math.pi)
        nx, ny = math.cos(ang), math.sin(ang)
        off = rng.uniform(0.25, 0.45) * min(h, w)
        side = (x - 0.5 * w) * nx + (y - 0.5 * h) * ny > off
        x, y, amp, sig = x[~side], y[~side], amp[~side], sig[~side]
        info["vacuum"] = True

    # thickness ramp
    g_ang = rng.uniform(0, 2 * math.pi)
    grad = rng.uniform(-o.thickness_gradient, o.thickness_gradient)
    ramp = 1.0 + grad * ((x - 0.5 * w) * math.cos(g_ang) + (y - 0.5 * h) * math.sin(g_ang)) / max(h, w)
    amp = amp * np.clip(ramp, 0.2, None)
    # carbon film
    bgh, bgw = int(math.ceil((h - 1) / BG_STEP)) + 2, int(math.ceil((w - 1) / BG_STEP)) + 2
    carbon = rng.uniform(*o.carbon)
    bg = rng.uniform(0.0, 0.05) + carbon * (1.0 + 0.5 * _smooth_field(rng, (bgh, bgw), 0.8))
    info.update(carbon=carbon, thickness_gradient=grad, columns=int(x.size))
    return Scene(x, y, amp, sig, jitter, drift, np.maximum(bg, 0.0), info)


def _pack(scenes: list[Scene], shape) -> tuple[dict, float]:
    """Concatenate scenes into the kernel's packed arrays (cell lists per image)."""
    h, w = shape
    ax, ay, amp, inv2s2, cut2, starts, meta = [], [], [], [], [], [], []
    aoff = coff = 0
    for s in scenes:
        cell = max(2.0, _CUTOFF * float(s.sigma.max()) if s.sigma.size else 2.0)
        x0 = -(abs(s.jitter).max() + abs(s.drift[0]) + cell + 1.0)
        y0 = -(abs(s.drift[1]) + cell + 1.0)
        ncx = int(math.ceil((w - 2 * x0) / cell)) + 1
        ncy = int(math.ceil((h - 2 * y0) / cell)) + 1
        cx = np.floor((s.x - x0) / cell).astype(np.int64)
        cy = np.floor((s.y - y0) / cell).astype(np.int64)
        ok = (cx >= 0) & (cx < ncx) & (cy >= 0) & (cy < ncy)
        idx = (cy * ncx + cx)[ok]
        order = np.argsort(idx, kind="stable")
        sel = np.nonzero(ok)[0][order]
        ax.append(s.x[sel])
        ay.append(s.y[sel])
        amp.append(s.amp[sel])
        inv2s2.append(1.0 / (2.0 * s.sigma[sel] ** 2))
        cut2.append((_CUTOFF * s.sigma[sel]) ** 2)
        starts.append(np.searchsorted(idx[order], np.arange(ncx * ncy + 1)).astype(np.int64))
        meta.append([aoff, coff, ncx, ncy, x0, y0, cell])
        aoff += sel.size
        coff += ncx * ncy + 1
    f32 = lambda parts: np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)  # noqa: E731
    packed = {
        "ax": f32(ax), "ay": f32(ay), "amp": f32(amp), "inv2s2": f32(inv2s2), "cutoff2": f32(cut2),
        "cell_start": np.concatenate(starts), "meta": np.array(meta, dtype=np.float64),
        "jitter": np.stack([s.jitter for s in scenes]).astype(np.float32),
        "drift": np.array([s.drift for s in scenes], dtype=np.float64),
        "bg": np.stack([s.bg for s in scenes]).astype(np.float32),
    }
    return packed, BG_STEP


class StemGenerator:
    """Seeded batches of synthetic HAADF-STEM micrographs on one device.

    Parameters
    ----------
    size : int or (rows, cols)
        Image shape (default 512 x 512).
    seed : int
        Image ``i`` (its ``index``) is drawn from ``numpy.random.default_rng([seed, i])``.
    dose : float or None
        Mean detected electrons per pixel for Poisson shot noise; ``None``: noise-free
        intensities (mean 1 over the image).
    device : None, "cpu", "cuda", Device
        Where the images are rendered and returned (``None``: the global ``--device`` setting).
    options : StemOptions or keyword overrides of its fields
    engine : kernel engine for ``fastem.kernels.stem_render`` (default by device)
    """

    def __init__(self, size=512, *, seed: int = 0, dose: float | None = 500.0, device=None,
                 options: StemOptions | None = None, engine: str | None = None, **overrides):
        try:
            shape = (int(size), int(size)) if np.ndim(size) == 0 else tuple(int(s) for s in size)
        except (TypeError, ValueError):
            raise InputError(f"size must be an int or (rows, cols), got {size!r}") from None
        if len(shape) != 2 or min(shape) < 8:
            raise InputError(f"STEM image size must be at least 8x8, got {shape}")
        if dose is not None and not (isinstance(dose, (int, float, np.integer, np.floating))
                                     and 0 < float(dose) < math.inf):
            raise InputError(f"dose must be a finite number > 0 electrons per pixel (or None for no noise), "
                             f"got {dose!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
            raise InputError(f"seed must be an integer >= 0, got {seed!r}")
        self.shape, self.seed, self.dose, self.engine = shape, int(seed), None if dose is None else float(dose), engine
        self.options = replace(options or StemOptions(), **overrides)
        self.device = backend.resolve_device(device)

    def scenes(self, n: int, index_base: int = 0) -> list[Scene]:
        return [build_scene(self.shape, np.random.default_rng([self.seed, index_base + i]), self.options)
                for i in range(n)]

    def __call__(self, n: int = 1, index_base: int = 0, *, out=None, return_info: bool = False):
        """Images ``index_base .. index_base + n - 1`` as an (n, rows, cols) float32 array.

        With ``return_info`` also a list of per-image dicts (structures, grains, magnification,
        jitter, drift, amorphous fraction, vacuum, carbon, thickness gradient, columns, dose).
        """
        from fastem.kernels.stem_render import render_stem

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) < 1:
            raise InputError(f"number of images n must be an integer >= 1, got {n!r}")
        if isinstance(index_base, bool) or not isinstance(index_base, (int, np.integer)) or int(index_base) < 0:
            raise InputError(f"index_base must be an integer >= 0, got {index_base!r}")
        scenes = self.scenes(int(n), int(index_base))
        packed, step = _pack(scenes, self.shape)
        dev = self.device
        with dev.use():
            xp = dev.xp
            if out is None:
                out = xp.empty((int(n), *self.shape), np.float32)
            packed = {k: backend.to_device(v, dev) for k, v in packed.items()}
            render_stem(out, packed, step, engine=self.engine)
            mean = out.mean(axis=(1, 2), keepdims=True)
            out /= xp.maximum(mean, 1e-12)
            if self.dose is not None:
                # one stream per image, so image ``index`` is the same whatever the batch split
                for i in range(int(n)):
                    entropy = [self.seed, int(index_base) + i, _NOISE_STREAM]
                    lam = out[i] * np.float32(self.dose)
                    if xp is np:
                        out[i] = np.random.default_rng(entropy).poisson(lam)
                    else:
                        rs = xp.random.RandomState(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
                        out[i] = rs.poisson(lam)
        if return_info:
            infos = [dict(s.info, dose=self.dose, index=index_base + i) for i, s in enumerate(scenes)]
            return out, infos
        return out


def generate_stem(n: int = 1, size=512, *, seed: int = 0, index_base: int = 0, dose: float | None = 500.0,
                  device=None, return_info: bool = False, **options):
    """``n`` synthetic HAADF-STEM micrographs, (n, rows, cols) float32 (see :class:`StemGenerator`).

    Examples
    --------
    >>> imgs = generate_stem(4, 256, seed=1, device="cpu")
    >>> imgs.shape
    (4, 256, 256)
    """
    gen = StemGenerator(size, seed=seed, dose=dose, device=device if device is not None else "cpu", **options)
    return gen(n, index_base, return_info=return_info)
