"""Run GENFIRE 1.1.11 on one tilt series (executed by the GENFIRE environment's Python).

Called by ``bench/tomo_regularised.py`` as
``GENFIRE_ENV/bin/python bench/peers/genfire_run.py IN.npz OUT.npz``; the environment is made
by ``bench/peers/make_genfire_env.sh`` (GENFIRE needs numpy < 2). Imports nothing from fastem.

``IN.npz``: ``projections`` (n_proj, rows, cols) float32, square images (GENFIRE's volume is
rows^3); ``tilts`` (n_proj,) degrees about the image's column axis; ``sign`` (+1/-1, applied to
the tilts); ``transpose`` (0/1: swap rows and columns of every image first); ``iterations``;
``oversampling`` (GENFIRE's default 3); ``rfree`` (0/1: withhold 5 % of the gridded Fourier
values for its R-free, as its default does). GENFIRE's other settings stay at its defaults
(FFT gridding, interpolation cutoff 0.5, resolution extension/suppression, positivity and a
full-box support), except its FFT thread count: GENFIRE hard-codes ``threads=6`` in its pyFFTW
wrappers; ``threads`` in ``IN.npz`` replaces it (equal threads for every method of a bench).

``OUT.npz``: ``volume`` (rows, rows, rows) float32 as GENFIRE returns it, ``seconds`` (wall
time of ``genfire.main.main``, including its gridding), ``errK`` (its Fourier error curve).
"""

import os
import sys
import tempfile
import time

import numpy as np


def main(src, dst):
    d = np.load(src)
    proj = np.asarray(d["projections"], np.float32)
    if int(d["transpose"]):
        proj = proj.transpose(0, 2, 1)
    if proj.shape[1] != proj.shape[2]:
        raise SystemExit(f"GENFIRE needs square projections, got {proj.shape[1:]}")
    n = proj.shape[0]
    angles = np.zeros((n, 3))
    angles[:, 1] = float(d["sign"]) * np.asarray(d["tilts"], float)   # (phi, theta, psi): a tilt about y

    import functools

    import genfire.main
    import genfire.reconstruct
    import genfire.utility
    from genfire.reconstruct import ReconstructionParameters

    threads = int(d["threads"])
    for name in ("rfftn", "irfftn", "rfftn_fftshift", "irfftn_fftshift", "fftn", "ifftn", "fftn_fftshift",
                 "ifftn_fftshift"):
        for mod in (genfire.utility, genfire.reconstruct):
            if hasattr(mod, name):
                setattr(mod, name, functools.partial(getattr(genfire.utility, name), threads=threads))

    with tempfile.TemporaryDirectory() as tmp:
        p_file, a_file, r_file = (os.path.join(tmp, f) for f in ("projections.npy", "angles.txt", "results.npy"))
        np.save(p_file, np.ascontiguousarray(np.moveaxis(proj, 0, -1)))   # GENFIRE: (rows, cols, n_proj)
        np.savetxt(a_file, angles)
        params = ReconstructionParameters()
        params.projections, params.eulerAngles, params.resultsFilename = p_file, a_file, r_file
        params.numIterations = int(d["iterations"])
        params.oversamplingRatio = int(d["oversampling"])
        params.calculateRfree = bool(int(d["rfree"]))
        t = time.perf_counter()
        genfire.main.main(params)
        seconds = time.perf_counter() - t
        vol = np.load(r_file).astype(np.float32)
        errk = np.loadtxt(os.path.join(tmp, "results_errK.txt"))
    np.savez(dst, volume=vol, seconds=seconds, errK=errk)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
