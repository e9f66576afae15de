"""The Hybrid-GAN training loop: one `train(...)` for the CLI and the Celery worker alike.

A run directory holds the durable record (see DESIGN.md):
  config.json           the resolved config
  metrics.jsonl         one JSON line per `log_every` steps (Loss/D, Loss/G, Loss/GP, Loss/info, W, img/s)
  samples/              fixed-z grids per class and the c_info grid of the paper's Figure 4
  checkpoints/          step-NNNNNNNNN.safetensors (servable G), step-NNNNNNNNN.state.pt (resume),
                        latest.json naming the newest complete pair

The caller decides how progress is shown and when to stop: `progress_fn(dict)` after each step and
`should_stop() -> bool` polled every step (the run then checkpoints and returns "stopped").
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import load_state, read_latest, save_generator, save_state, write_latest
from .config import Config, model_config_from_dict
from .data import Batches, ShoeData, load_dataset
from .distributed import (all_mean, any_rank, average_gradients, broadcast_module, convert_batchnorm,
                          current_shard, init_from_env, launch)
from .fsutil import atomic_write_text
from .losses import critic_wgan_loss, generator_loss, gradient_penalty, info_loss
from .networks import Discriminator, Generator
from .sampling import cinfo_grid, forward, image_grid, latent


class TrainingDiverged(RuntimeError):
    """Losses went non-finite or exploded; the run stopped without writing a diverged checkpoint."""


@dataclass
class TrainResult:
    status: str  # "completed" | "stopped"
    step: int
    total_steps: int
    checkpoint: str | None  # the newest servable generator file
    run_dir: str


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def autocast_for(cfg: Config, device: torch.device):
    """bf16 autocast on CUDA by default; on CPU only when asked (it is ~10x slower without native bf16)."""
    amp = cfg.train.amp
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


class CompiledOrEager:
    """torch.compile(module), falling back to the eager module for good (with a warning) the first
    time compiling or running the compiled graph fails. Parameters are the module's own, so the
    optimiser, the EMA and checkpoints see no difference."""

    def __init__(self, module: torch.nn.Module):
        self.module, self.compiled = module, torch.compile(module)

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as e:  # inductor/dynamo failures vary by platform and version
                warnings.warn(f"torch.compile failed, G continues eager: {type(e).__name__}: {e}"[:500])
                self.compiled = None
        return self.module(*args)


class Trainer:
    """G, D, the optimisers and the EMA of G, built from one config, and the two training steps.

    train() drives it; bench/ times its steps against a naive baseline.
    """

    def __init__(self, cfg: Config, device: torch.device):
        t = cfg.train
        self.cfg, self.device, self.autocast = cfg, device, autocast_for(cfg, device)
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        self.shard = current_shard()  # this process's share of each global batch (model/distributed.py)
        self.G = Generator(cfg.model).to(device, memory_format=fmt)
        self.D = Discriminator(cfg.model).to(device, memory_format=fmt)
        if self.shard.active:  # before the optimisers see the parameters
            for net in (self.G, self.D):
                convert_batchnorm(net)
                broadcast_module(net)
        self.g_forward = CompiledOrEager(self.G) if t.compile == "g" else self.G
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas)
        self.opt_D = torch.optim.Adam(self.D.head_parameters(), lr=t.lr_d, betas=t.betas)
        self.opt_Q = torch.optim.Adam(self.D.q.parameters(), lr=t.lr_q, betas=t.betas)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if t.ema_beta > 0 else None
        self.ema_updates = 0  # G steps averaged so far: the EMA's warm-up (see update_ema)

    def state(self) -> dict[str, Any]:
        s = {"G": self.G.state_dict(), "D": self.D.state_dict(), "opt_G": self.opt_G.state_dict(),
             "opt_D": self.opt_D.state_dict(), "opt_Q": self.opt_Q.state_dict()}
        if self.G_ema is not None:
            s["G_ema"] = self.G_ema.state_dict()
            s["ema_updates"] = self.ema_updates
        return s

    def load(self, s: dict[str, Any]) -> None:
        self.G.load_state_dict(s["G"])
        self.D.load_state_dict(s["D"])
        self.opt_G.load_state_dict(s["opt_G"])
        self.opt_D.load_state_dict(s["opt_D"])
        self.opt_Q.load_state_dict(s["opt_Q"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(s.get("G_ema", s["G"]))
            self.ema_updates = int(s.get("ema_updates", 0))

    @torch.no_grad()
    def update_ema(self, beta: float) -> None:
        # Warm-up as TensorFlow's ExponentialMovingAverage(num_updates): beta_n = min(beta, (1+n)/(10+n)),
        # so that a short run's average is not dominated by the random initial weights.
        beta = min(beta, (1 + self.ema_updates) / (10 + self.ema_updates))
        self.ema_updates += 1
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p, 1 - beta)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    @property
    def serving_G(self) -> Generator:
        return self.G_ema if self.G_ema is not None else self.G

    def _critic(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.D(x, c)[0]

    def critic_step(self, x: torch.Tensor, c: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """WGAN-GP + info loss on D_head and Q (paper sec. 3.5), one optimiser step of D and Q."""
        cfg, t, dev, take = self.cfg.model, self.cfg.train, self.device, self.shard.take
        B = x.shape[0] * self.shard.world  # the global batch: every rank draws it all, keeps its share
        z = take(torch.randn(B, cfg.z_dim, device=dev))
        c_info = take(torch.rand(B, cfg.info_dim, device=dev) * 2 - 1)
        with torch.no_grad(), self.autocast():
            fake = self.g_forward(z, c, c_info)  # fakes for the critic need no graph through G
        with self.autocast():
            real_score, _ = self.D(x, c)
            fake_score, q_fake = self.D(fake, c)
        loss_w = critic_wgan_loss(real_score, fake_score)
        loss_D = loss_w
        gp = torch.zeros((), device=dev)
        if t.gp_weight > 0 and step % t.gp_every == 0:
            eps = take(torch.rand(B, 1, 1, 1, device=dev, dtype=x.dtype))
            gp = gradient_penalty(self._critic, x, fake, c, eps)
            loss_D = loss_D + t.gp_weight * t.gp_every * gp  # lazy GP scales by its interval
        l_info = info_loss(q_fake, c_info)
        if t.info_weight > 0:
            loss_D = loss_D + t.info_weight * l_info
        if t.mismatch_weight > 0:  # real image with a wrong label counted as fake (Reed et al.)
            nc = cfg.num_classes
            wrong = (c + take(torch.randint(1, nc, (B,), device=dev))) % nc
            with self.autocast():
                mm_score, _ = self.D(x, wrong)
            loss_D = loss_D + t.mismatch_weight * mm_score.float().mean()
        self.opt_D.zero_grad(set_to_none=True)
        self.opt_Q.zero_grad(set_to_none=True)
        loss_D.backward()
        if self.shard.active:
            average_gradients(self.D.parameters())
        self.opt_D.step()
        self.opt_Q.step()
        return {"loss_D": loss_D.detach(), "loss_w": loss_w.detach(), "gp": gp.detach()}

    def generator_step(self, c: torch.Tensor) -> dict[str, torch.Tensor]:
        """-D(G(z, c, c_info), c) + info loss, one optimiser step of G with D frozen."""
        cfg, t, dev = self.cfg.model, self.cfg.train, self.device
        B, take = c.shape[0] * self.shard.world, self.shard.take
        self.D.requires_grad_(False)  # no parameter gradients of D are needed here
        z = take(torch.randn(B, cfg.z_dim, device=dev))
        c_info = take(torch.rand(B, cfg.info_dim, device=dev) * 2 - 1)
        with self.autocast():
            score, q = self.D(self.g_forward(z, c, c_info), c)
        l_info = info_loss(q, c_info)
        loss_G = generator_loss(score)
        total = loss_G + t.info_weight * l_info if t.info_weight > 0 else loss_G
        self.opt_G.zero_grad(set_to_none=True)
        total.backward()
        if self.shard.active:
            average_gradients(self.G.parameters())
        self.opt_G.step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self.update_ema(t.ema_beta)
        return {"loss_G": loss_G.detach(), "info": l_info.detach()}


def train(config: Config, run_dir: str | Path, *, data: ShoeData | None = None,
          progress_fn: Callable[[dict[str, Any]], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          resume: bool = True, resume_from: str | Path | None = None) -> TrainResult:
    """Train Hybrid-GAN into run_dir, resuming from run_dir's latest checkpoint when there is one.

    data: a prepared dataset (else loaded from config.data); only its training split is used.
    resume_from: a resume-state file of another run to continue from (weights, optimisers, step).
    Raises TrainingDiverged when the losses go non-finite or past train.divergence_threshold.
    """
    if config.train.nproc > 1 and "LOCAL_RANK" not in os.environ:  # not yet inside torchrun: launch it
        config.validate()
        return launch(config, run_dir, progress_fn=progress_fn, should_stop=should_stop, resume=resume,
                      resume_from=resume_from)
    run_dir = Path(run_dir)
    ckpt_dir, sample_dir = run_dir / "checkpoints", run_dir / "samples"
    cfg = Config.from_dict(config.to_dict())  # private copy: the caller's object is never changed
    created_group = init_from_env(resolve_device(cfg.train.device).type)
    try:
        return _train(cfg, run_dir, ckpt_dir, sample_dir, data, progress_fn, should_stop, resume, resume_from)
    finally:
        if created_group:
            torch.distributed.destroy_process_group()


def _train(cfg: Config, run_dir: Path, ckpt_dir: Path, sample_dir: Path, data: ShoeData | None,
           progress_fn, should_stop, resume: bool, resume_from) -> TrainResult:
    shard = current_shard()
    lead = shard.rank == 0  # only rank 0 writes the run directory
    if lead:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        sample_dir.mkdir(exist_ok=True)

    state = None
    latest = read_latest(ckpt_dir) if resume else None
    if latest is not None:
        state = load_state(ckpt_dir / latest["state"])
    elif resume_from is not None:
        state = load_state(resume_from)
    if state is not None:
        # The architecture comes from the checkpoint, never from the caller (nanoGPT's rule).
        cfg.model = model_config_from_dict(json.loads(state["model_config"]))
    cfg.validate()
    t = cfg.train

    device = resolve_device(t.device)
    if device.type == "cuda" and shard.active:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if t.num_threads > 0 and device.type == "cpu":
        torch.set_num_threads(t.num_threads)
    if data is None:
        data = load_dataset(cfg.data, cfg.model.resolution)
    if len(data.class_names) != cfg.model.num_classes:
        if state is not None:
            raise ValueError(f"the checkpoint has {cfg.model.num_classes} classes, the data "
                             f"{len(data.class_names)} ({data.class_names})")
        cfg.model.num_classes = len(data.class_names)  # the data decides the number of classes
    if data.images.shape[1] != cfg.model.resolution:
        raise ValueError(f"data prepared at {data.images.shape[1]} px for a {cfg.model.resolution} px model")
    train_data = data.split("train")
    batches = Batches(train_data, t.batch_size, t.seed, cfg.data.hflip, device, t.channels_last, shard)
    total_steps = max(1, math.ceil(t.epochs * batches.steps_per_epoch))

    torch.manual_seed(t.seed)  # weights init; the RNG is restored from the state on resume
    m = Trainer(cfg, device)
    step = 0
    if state is not None:
        m.load(state)
        step = int(state["step"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
    if lead:
        atomic_write_text(run_dir / "config.json",
                          json.dumps({**cfg.to_dict(), "class_names": data.class_names,
                                      "steps_per_epoch": batches.steps_per_epoch, "total_steps": total_steps,
                                      "train_images": len(train_data), "device": str(device),
                                      "processes": shard.world}, indent=2, sort_keys=True))

    fixed = _fixed_latents(cfg)
    zero = torch.zeros((), device=device)
    last_ckpt = (str(ckpt_dir / latest["generator"]) if latest else None)
    metrics_f = open(run_dir / "metrics.jsonl", "a", buffering=1) if lead else open(os.devnull, "w")
    sums: dict[str, float] = {}
    n_sum = 0
    bad = 0
    deferred_ckpt = False
    t_log, step_log = time.perf_counter(), step
    img_per_s = 0.0
    B = t.batch_size

    def checkpoint(at: int) -> str:
        name = f"step-{at:09d}"
        if not lead:
            return str(ckpt_dir / f"{name}.safetensors")
        gen_path = save_generator(m.serving_G, ckpt_dir / f"{name}.safetensors", class_names=data.class_names,
                                  step=at, version=f"{run_dir.name}/{name}",
                                  extra={"preset": cfg.preset, "ema": m.G_ema is not None,
                                         "holdout_fraction": cfg.data.holdout_fraction})
        st = m.state()
        st.update(step=at, model_config=json.dumps(cfg.to_dict()["model"]), rng_cpu=torch.get_rng_state())
        if device.type == "cuda":
            st["rng_cuda"] = torch.cuda.get_rng_state(device)
        save_state(st, ckpt_dir / f"{name}.state.pt")
        write_latest(ckpt_dir, at, gen_path.name, f"{name}.state.pt")
        _prune(ckpt_dir, t.keep_checkpoints)
        return str(gen_path)

    def samples(at: int) -> None:
        if not lead:
            return
        G = m.serving_G
        z, c, ci = fixed
        imgs = forward(G, z, c, ci)
        image_grid(imgs, ncol=t.samples_per_class).save(sample_dir / f"step-{at:09d}.png")
        for k, name in enumerate(data.class_names):
            grid, _ = cinfo_grid(G, k, seed=t.seed, steps=t.grid_steps)
            image_grid(grid, ncol=t.grid_steps).save(sample_dir / f"cinfo-{_slug(name)}-step-{at:09d}.png")

    status = "completed"
    try:
        while step < total_steps:
            epoch, in_epoch = divmod(step, batches.steps_per_epoch)
            for x, c in batches.epoch(epoch, in_epoch):
                d = m.critic_step(x, c, step)
                g = m.generator_step(c) if step % t.n_critic == 0 else {"loss_G": zero, "info": zero}
                step += 1

                vals = all_mean(torch.stack([d["loss_D"], g["loss_G"], d["gp"], g["info"], -d["loss_w"]]).float()).cpu()
                vmax = float(vals.abs().max()) if torch.isfinite(vals).all() else math.inf
                if vmax > t.divergence_threshold:
                    bad += 1
                    if bad >= t.divergence_patience:
                        reason = (f"diverged at step {step}: losses {vals.tolist()} (D, G, GP, info, W) "
                                  f"beyond {t.divergence_threshold:g} for {bad} steps")
                        metrics_f.write(json.dumps({"step": step, "event": "diverged", "reason": reason}) + "\n")
                        raise TrainingDiverged(reason)
                    deferred_ckpt = deferred_ckpt or step % t.ckpt_every == 0  # never save a bad step
                    continue
                bad = 0
                for k, v in zip(("Loss/D", "Loss/G", "Loss/GP", "Loss/info", "W"), vals.tolist()):
                    sums[k] = sums.get(k, 0.0) + v
                n_sum += 1

                if step % t.log_every == 0 or step == total_steps:
                    now = time.perf_counter()
                    img_per_s = (step - step_log) * B / max(now - t_log, 1e-9)
                    t_log, step_log = now, step
                    row = {"step": step, "epoch": step / batches.steps_per_epoch, "kimg": step * B / 1000,
                           **{k: v / max(n_sum, 1) for k, v in sums.items()},
                           "Speed/img_per_s": img_per_s, "time": time.time()}
                    metrics_f.write(json.dumps(row) + "\n")
                    sums, n_sum = {}, 0
                if step % t.sample_every == 0:
                    samples(step)
                if step % t.ckpt_every == 0 or deferred_ckpt:
                    last_ckpt = checkpoint(step)
                    deferred_ckpt = False
                if progress_fn is not None and lead:
                    left = total_steps - step
                    progress_fn({"step": step, "total_steps": total_steps, "epoch": step / batches.steps_per_epoch,
                                 "epochs": t.epochs, "img_per_s": img_per_s,
                                 "eta_s": left * B / img_per_s if img_per_s > 0 else None,
                                 "losses": dict(zip(("Loss/D", "Loss/G", "Loss/GP", "Loss/info", "W"),
                                                    vals.tolist()))})
                if step >= total_steps:
                    break
                if any_rank(should_stop is not None and lead and should_stop(), device):
                    status = "stopped"
                    break
            if status == "stopped":
                break
    finally:
        metrics_f.close()

    if not all(torch.isfinite(p).all() for p in m.serving_G.parameters()):
        raise TrainingDiverged(f"generator weights are not finite at step {step}; no checkpoint written")
    if last_ckpt is None or not last_ckpt.endswith(f"step-{step:09d}.safetensors"):
        last_ckpt = checkpoint(step)
    samples(step)
    if shard.active:
        torch.distributed.barrier()  # rank 0's last checkpoint exists before any rank returns
    return TrainResult(status, step, total_steps, last_ckpt, str(run_dir))


def _fixed_latents(cfg: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same z for every class in the sample grids: rows are classes, columns samples."""
    n, k = cfg.train.samples_per_class, cfg.model.num_classes
    zs, infos = zip(*(latent(10_000 + i, cfg.model.z_dim, cfg.model.info_dim) for i in range(n)))
    z = torch.stack(zs).repeat(k, 1)
    ci = torch.stack(infos).repeat(k, 1)
    c = torch.eye(k).repeat_interleave(n, dim=0)
    return z, c, ci


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _prune(ckpt_dir: Path, keep: int) -> None:
    """Keep the newest `keep` servable files and the two newest resume states; drop temp files a
    killed writer left behind (they were never renamed, so nothing ever read them)."""
    gens = sorted(ckpt_dir.glob("step-*.safetensors"))
    states = sorted(ckpt_dir.glob("step-*.state.pt"))
    for p in (gens[:-keep] if keep > 0 else []) + states[:-2] + list(ckpt_dir.glob(".*.tmp")):
        p.unlink(missing_ok=True)
