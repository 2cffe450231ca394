"""ALRC fused loss step (forward + backward) vs the same loss composed from torch / NumPy operations."""

from __future__ import annotations

import numpy as np

from fastem import backend

NAME = "train-alrc"
DESCRIPTION = ("ALRC per-example loss + clipping + moment update, forward+backward, float32 512x512 images at "
               "batch 1 and 64: fused kernels vs torch composition (autograd) and vs plain NumPy")


def _numpy_composed(pred, target, moments, loss, n=3.0, beta=0.999):
    """The same step written as a plain NumPy composition (temporaries and all)."""
    b = pred.shape[0]
    d = pred - target
    e = d * d if loss == "mse" else (d * d) ** 2
    per = e.reshape(b, -1).mean(axis=1, dtype=np.float64)
    mu1, mu2 = moments
    lmax = mu1 + n * np.sqrt(max(mu2 - mu1 * mu1, 0.0) + 1e-8)
    factor = np.where(per > lmax, lmax / per, 1.0)
    dyn = factor * per
    de = 2.0 * d if loss == "mse" else 4.0 * d * d * d
    grad = (de * (factor / (b * d[0].size)).astype(np.float32).reshape((b,) + (1,) * (d.ndim - 1)))
    moments[0] = beta * mu1 + (1 - beta) * dyn.mean()
    moments[1] = beta * mu2 + (1 - beta) * np.mean(dyn * dyn)
    return dyn.mean(), grad


def run(ctx) -> None:
    from fastem.train import ALRC

    rng = np.random.default_rng(0)
    shapes = [(1, 512, 512), (64, 512, 512)] if not ctx.quick else [(1, 32, 32), (4, 32, 32)]
    torch = backend.optional_module("torch")
    if ctx.device.is_gpu:
        ctx.note("GPU: torch CUDA tensors through the CUDA C kernels (moments on the device)")
    else:
        ctx.note("CPU only: no GPU was available for this run; the GPU path (CUDA C kernels, moments on the "
                 "device) exists but is not timed here")
    for shape in shapes:
        label = "x".join(map(str, shape))
        pred_np = rng.standard_normal(shape).astype(np.float32)
        target_np = rng.standard_normal(shape).astype(np.float32)
        pixels = float(np.prod(shape))
        for loss in ("mse", "quartic"):
            kind = f"alrc {loss} fwd+bwd f32"
            # ---- torch: fused autograd function vs composition --------------------------------
            if torch is not None:
                from fastem.train import ALRCLoss, alrc_loss_reference

                tdev = "cuda" if ctx.device.is_gpu else "cpu"
                p = torch.tensor(pred_np, device=tdev, requires_grad=True)
                t = torch.tensor(target_np, device=tdev)
                crit = ALRCLoss(loss).to(tdev)
                mom = torch.tensor([25.0, 900.0], dtype=torch.float64, device=tdev)

                def fused(p=p, t=t, crit=crit):
                    p.grad = None
                    crit(p, t).backward()

                def composed(p=p, t=t, mom=mom, loss=loss):
                    p.grad = None
                    alrc_loss_reference(p, t, mom, loss=loss)[0].backward()

                def plain(p=p, t=t, loss=loss):
                    p.grad = None
                    d = p - t
                    ((d * d) if loss == "mse" else (d * d) ** 2).mean().backward()

                ctx.measure(f"torch {kind}", label, "fastem ALRCLoss (fused)", fused, work=pixels, work_unit="px")
                ctx.measure(f"torch {kind}", label, "torch ops + autograd (ALRC)", composed, role="peer")
                ctx.measure(f"torch {kind}", label, "torch plain mean loss (no ALRC)", plain, role="reference")
            else:
                ctx.note("torch not installed: torch comparison skipped")
            # ---- NumPy/CuPy functional path vs plain NumPy composition ---------------------------
            xp = ctx.xp
            pd, td = xp.asarray(pred_np), xp.asarray(target_np)
            alrc = ALRC(loss, device=ctx.device)
            ctx.measure(f"array {kind}", label, "fastem ALRC(..., grad=True)", lambda: alrc(pd, td, grad=True),
                        work=pixels, work_unit="px")
            if ctx.device.is_cpu:
                m_np = np.array([25.0, 900.0])
                ctx.measure(f"array {kind}", label, "plain NumPy composition",
                            lambda: _numpy_composed(pred_np, target_np, m_np, loss), role="peer")
