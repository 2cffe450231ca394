"""Training the completion GAN: losses (eqs. 6-10), the two-stage schedule, experience replay.

One step of :class:`CompletionTask` (seed 000 sections 2.2-2.3):

* data: a fresh batch from the :class:`~fastem.nn.completion_data.DataSource`; each example is
  replaced with probability 0.2 by a hard example from the replay buffer (eqs. 11-15);
* generator losses: ``L_mse = ALRC(h(s * MSE(G(x), y)))`` (eq. 9, ``h`` the Huberisation
  ``x if x <= 1 else sqrt(x)``, ``s`` = ``mse_scale``), ``L_aux = ALRC(h(s * MSE(A(x), y_half)))``
  (eq. 7, ``y_half`` the bilinearly downsampled blurred truth), both clipped per example by
  fastem's fused :class:`~fastem.train.ALRCLoss`; in the adversarial stage
  ``L_adv = sum_scales mean (D_s(crop_s(G(x))) - 1)^2`` (eq. 8, no real-image term);
  ``L_G = lambda_adv L_adv + L_mse + lambda_aux L_aux`` (eq. 10);
* discriminators (adversarial stage): ``L_D = sum_scales mean[(D_s(crop_s(y)) - 1)^2 +
  D_s(crop_s(G(x)))^2]`` (eq. 6), least-squares targets 1 (real) / 0 (generated), crops at the
  same coverage-isotropic places for real and generated images (eqs. 3-5);
* schedule (:func:`schedule`, the paper's 4 x 250 000 iterations scaled to ``total_steps``):
  quarter 1 non-adversarial, Adam lr ``lr_stage1``, beta1 0.9; quarter 2 the lr decays to 0
  and beta1 to 0.5 in 8 steps; quarter 3 adversarial, generator and discriminator lr
  ``lr_stage2`` / ``lr_disc``, beta1 0.5; quarter 4 the generator lr decays to 0 in 8 steps
  (discriminators constant). Mean-only batch norm is frozen from the second half on.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from fastem.errors import InputError
from fastem.io import run_fingerprint

from .blocks import data_init, freeze_batch_norm
from .completion import CompletionConfig, CompletionGenerator, MultiScaleDiscriminator
from .completion_data import ValidationSet
from .replay import ExperienceReplay

__all__ = ["schedule", "CompletionTask", "validation_rmse"]


def schedule(step: int, total: int, cfg: CompletionConfig) -> dict:
    """Learning rates, Adam beta1 and stage flags at ``step`` of ``total`` (seed 000 section 2.3).

    Returns ``{"lr_g", "beta1_g", "lr_d", "beta1_d", "adversarial", "bn_frozen"}``.
    """
    q = max(total / 4.0, 1e-9)
    k = cfg.decay_steps
    if step < q:
        lr, b1, adv = cfg.lr_stage1, cfg.beta1_start, False
    elif step < 2 * q:
        i = min(int(k * (step - q) / q), k)
        lr = cfg.lr_stage1 * (1.0 - i / k)
        b1 = cfg.beta1_start - (cfg.beta1_start - cfg.beta1_end) * i / k
        adv = False
    elif step < 3 * q:
        lr, b1, adv = cfg.lr_stage2, cfg.beta1_end, True
    else:
        i = min(int(k * (step - 3 * q) / q), k)
        lr, b1, adv = cfg.lr_stage2 * (1.0 - i / k), cfg.beta1_end, True
    return {"lr_g": lr, "beta1_g": b1, "lr_d": cfg.lr_disc, "beta1_d": cfg.beta1_end,
            "adversarial": adv and cfg.adversarial, "bn_frozen": step >= 2 * q}


def _set_adam(opt: torch.optim.Optimizer, lr: float, beta1: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr
        g["betas"] = (beta1, g["betas"][1])


@torch.no_grad()
def validation_rmse(generator: CompletionGenerator, valset: ValidationSet, batch: int = 16) -> float:
    """RMSE on [0, 1] intensities of ``generator`` over ``valset`` (eval mode, no grad)."""
    was = generator.training
    generator.eval()
    dev = next(generator.parameters()).device
    sq, n = 0.0, 0
    try:
        for i in range(0, len(valset), batch):
            x = valset.x[i:i + batch].to(dev)
            y = valset.y[i:i + batch].to(dev)
            out = generator.complete(x)
            sq += float(((out - y) ** 2).double().sum())
            n += y.numel()
    finally:
        generator.train(was)
    return math.sqrt(sq / n) / 2.0


class CompletionTask:
    """The completion GAN as a :class:`~fastem.nn.training.Trainer` task.

    Parameters
    ----------
    config : CompletionConfig
    source : DataSource
        Training batches (:class:`~fastem.nn.completion_data.PartialScanSource` by default).
    total_steps : int
    valset : ValidationSet, optional
        Fixed validation examples (``validate`` returns ``{"rmse": ...}``; empty without).
    seed : int
        Seeds the network initialisation and the task's generator (replay draws, crops).
    device : "cpu", "cuda", torch.device
    record : dict, optional
        Extra JSON-able training parameters folded into the resume fingerprint.
    """

    def __init__(self, config: CompletionConfig | None = None, source=None, *, total_steps: int = 1000,
                 valset: ValidationSet | None = None, seed: int = 0, device="cpu", record: dict | None = None):
        from fastem.train import ALRCLoss

        if source is None:
            raise InputError("CompletionTask needs a data source")
        self.config = config or CompletionConfig()
        self.source, self.valset = source, valset
        self.total_steps, self.seed = int(total_steps), int(seed)
        if self.total_steps < 1:
            raise InputError(f"total steps must be >= 1, got {total_steps}")
        self.device = torch.device(device)
        self.record = dict(record or {})
        c = self.config
        torch.manual_seed(self.seed)
        self.generator = CompletionGenerator(c).to(self.device)
        self.discriminator = MultiScaleDiscriminator(c).to(self.device)
        x0, _ = source.batch(0)  # an example scan for the data-dependent init (consumes no random state)
        data_init(self.generator, x0.to(self.device))
        self.alrc_mse = ALRCLoss("huber", mu1=c.alrc_mu1, mu2=c.alrc_mu2, beta=c.alrc_beta, n=c.alrc_n,
                                 scale=c.mse_scale, clip=c.alrc).to(self.device)
        self.alrc_aux = ALRCLoss("huber", mu1=c.alrc_mu1, mu2=c.alrc_mu2, beta=c.alrc_beta, n=c.alrc_n,
                                 scale=c.mse_scale, clip=c.alrc).to(self.device)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=c.lr_stage1, betas=(c.beta1_start, 0.999))
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_disc, betas=(c.beta1_end, 0.999))
        self.replay = ExperienceReplay(c.replay_size, c.replay_prob if c.replay else 0.0)
        self.rng = np.random.default_rng([self.seed, 0xC0DE])
        self.modules = {"generator": self.generator, "discriminator": self.discriminator,
                        "alrc_mse": self.alrc_mse, "alrc_aux": self.alrc_aux}
        self.optimizers = {"generator": self.opt_g, "discriminator": self.opt_d}
        self.schedulers = {}

    # ------------------------------------------------------------------ task protocol
    def fingerprint(self) -> dict:
        params = {"config": self.config.to_dict(), "data": self.source.describe(), "total_steps": self.total_steps,
                  "seed": self.seed, **{f"record.{k}": v for k, v in self.record.items()}}
        return run_fingerprint(self.source.fingerprint_inputs(), params)

    def extra_state(self) -> dict:
        from .training import numpy_state_to_json

        return {"replay": self.replay.state_dict(), "rng": numpy_state_to_json(self.rng.bit_generator.state)}

    def load_extra_state(self, state: dict) -> None:
        from .training import numpy_state_from_json

        self.replay.load_state_dict(state["replay"])
        self.rng.bit_generator.state = numpy_state_from_json(state["rng"])

    def validate(self) -> dict:
        if self.valset is None:
            return {}
        return {"rmse": validation_rmse(self.generator, self.valset)}

    # ------------------------------------------------------------------ one step
    def _replayed_batch(self, step: int):
        x, y = self.source.batch(step)
        x, y = x.to(self.device), y.to(self.device)
        picks = self.replay.draw(self.rng, x.shape[0])
        if any(p is not None for p in picks):
            x, y = x.clone(), y.clone()
            for b, p in enumerate(picks):
                if p is not None:
                    ix, iy = self.replay.items[p]
                    x[b], y[b] = ix.to(self.device), iy.to(self.device)
        return x, y, picks

    def train_step(self, step: int) -> dict:
        c = self.config
        sch = schedule(step, self.total_steps, c)
        _set_adam(self.opt_g, sch["lr_g"], sch["beta1_g"])
        _set_adam(self.opt_d, sch["lr_d"], sch["beta1_d"])
        freeze_batch_norm(self.generator, sch["bn_frozen"])
        self.generator.train()
        self.discriminator.train()

        x, y, picks = self._replayed_batch(step)
        out, aux = self.generator(x)
        y_half = F.interpolate(y, size=aux.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
        l_mse = self.alrc_mse(out, y)
        losses = {"mse": float(((out.detach() - y) ** 2).mean())}
        loss_g = l_mse
        if c.auxiliary:
            l_aux = self.alrc_aux(aux, y_half)
            loss_g = loss_g + c.lambda_aux * l_aux
            losses["l_aux"] = float(l_aux.detach())
        if sch["adversarial"]:
            crops = self.discriminator.crop(self.rng, out, y)
            d_fake = self.discriminator([cr[0] for cr in crops])
            l_adv = sum(((d - 1.0) ** 2).mean() for d in d_fake)
            loss_g = loss_g + c.lambda_adv * l_adv
            losses["l_adv"] = float(l_adv.detach())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if sch["adversarial"]:
            self.opt_d.zero_grad(set_to_none=True)
            d_real = self.discriminator([cr[1] for cr in crops])
            d_fake = self.discriminator([cr[0].detach() for cr in crops])
            l_d = sum(((r - 1.0) ** 2).mean() + (f ** 2).mean() for r, f in zip(d_real, d_fake))
            l_d.backward()
            self.opt_d.step()
            losses["l_d"] = float(l_d.detach())

        per_example = self.alrc_mse.last_losses.detach().double().cpu().numpy()
        for b, p in enumerate(picks):
            if p is None and c.replay:
                self.replay.observe(per_example[b], (x[b].detach().cpu().clone(), y[b].detach().cpu().clone()),
                                    self.rng)
        clipped = self.alrc_mse.last_clipped.detach().double().cpu().numpy()
        return {"loss_g": float(loss_g.detach()), "l_mse": float(l_mse.detach()),
                "rmse": math.sqrt(losses.pop("mse")) / 2.0, **losses,
                "clipped": float(np.sum(clipped < per_example)),
                "replayed": float(sum(p is not None for p in picks)), "lr_g": sch["lr_g"]}
