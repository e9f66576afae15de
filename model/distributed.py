"""Data-parallel training across processes (torch.distributed): several GPUs in one job, or gloo on CPU.

Semantics: N processes together take exactly the step a single process takes with the same global
batch. Every rank draws the whole batch's random numbers (same seed, same RNG stream) and keeps its
strided share `[rank::world]`, which also keeps the minibatch-stddev groups of the paper's
discriminator intact (they are strided too). Gradients are averaged with one all-reduce per
optimiser step and BatchNorm statistics are computed over the global batch.

Why not torch's DistributedDataParallel wrapper: the critic's gradient penalty differentiates twice
through D (autograd.grad(create_graph=True)), which DDP's reducer (it only handles gradients
accumulated into .grad) and torch's SyncBatchNorm ("derivative for batch_norm_backward_elemt is not
implemented", pytorch/pytorch#61222) do not support; an explicit all-reduce after backward and a
twice-differentiable synchronised BatchNorm do.

`launch()` is what `train()` calls when `train.nproc > 1` outside a process group: it runs
`torchrun --standalone --nproc_per_node N -m model.distributed CONFIG RUN_DIR` and follows rank 0's
metrics, so the CLI and the Celery worker get multi-process training through the same `train()`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

STOP_FILE = "STOP"  # the launcher asks rank 0 to checkpoint and stop by creating run_dir/STOP
RESULT_FILE = "result.json"  # rank 0 writes the TrainResult here when a launched run ends


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global-batch tensor: rows rank, rank+world, ..."""
        return t[self.rank::self.world] if self.active else t


def current_shard() -> Shard:
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def init_from_env(device_type: str) -> bool:
    """Join the process group torchrun describes in the environment; True when this call created it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return True


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of all ranks.

    Unlike torch.nn.SyncBatchNorm it is built from differentiable collectives, so the gradient
    penalty can differentiate through it twice. With one process it is exactly nn.BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        world = dist.get_world_size()
        n = x.shape[0] * x.shape[2] * x.shape[3] * world
        xf = x.float()
        sums = all_reduce(torch.stack([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3))]))  # (2, C)
        mean = sums[0] / n
        var = (sums[1] / n - mean.square()).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), m)
                self.num_batches_tracked += 1
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d in module for SyncBatchNorm2d, keeping parameters and buffers."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            sync = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats).to(next(child.buffers()).device)
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            convert_batchnorm(child)
    return module


def broadcast_module(module: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank."""
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, 0)


def average_gradients(params) -> None:
    """Average .grad over the ranks with one all-reduce of a flat buffer."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over the ranks (identity with one process)."""
    if not current_shard().active:
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when flag is true on any (so that all ranks stop at the same step)."""
    if not current_shard().active:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# --- launching -------------------------------------------------------------------------------------

def launch(config, run_dir: str | Path, *, progress_fn: Callable[[dict[str, Any]], None] | None = None,
           should_stop: Callable[[], bool] | None = None, resume: bool = True,
           resume_from: str | Path | None = None, poll_s: float = 0.5):
    """Run train() in `config.train.nproc` processes under torchrun and wait for it.

    Progress comes from rank 0's metrics.jsonl; should_stop() creates run_dir/STOP, which rank 0
    polls. Returns rank 0's TrainResult; a failed run raises with the tail of its output.
    """
    from .fsutil import atomic_write_text
    from .train import TrainingDiverged, TrainResult

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not config.data.path:
        raise ValueError("multi-process training reads its data from data.path; set it")
    for name in (STOP_FILE, RESULT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    request = run_dir / "launch.json"
    atomic_write_text(request, json.dumps({"config": config.to_dict(), "resume": resume,
                                           "resume_from": str(resume_from) if resume_from else None}))
    n = config.train.nproc
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "model.distributed", str(request)]
    env = dict(os.environ)
    if config.train.num_threads <= 0 and "OMP_NUM_THREADS" not in env:  # share the cores, don't oversubscribe
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    log_path = run_dir / "launch.log"
    metrics = run_dir / "metrics.jsonl"
    offset = metrics.stat().st_size if metrics.exists() else 0
    total = None
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=Path(__file__).resolve().parents[1], preexec_fn=_die_with_parent)
        try:
            while proc.poll() is None:
                time.sleep(poll_s)
                if should_stop is not None and should_stop():
                    (run_dir / STOP_FILE).touch()
                if progress_fn is not None and metrics.exists():
                    if total is None and (run_dir / "config.json").exists():
                        total = json.loads((run_dir / "config.json").read_text()).get("total_steps")
                    with open(metrics) as f:
                        f.seek(offset)
                        chunk = f.read()
                    complete = chunk[:chunk.rfind("\n") + 1]  # never a half-written line
                    offset += len(complete.encode())
                    for line in complete.splitlines():
                        row = json.loads(line)
                        if "Loss/D" in row and total:
                            progress_fn(_progress_from_row(row, total, config.train.epochs, config.train.batch_size))
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    result_path = run_dir / RESULT_FILE
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-2000:]
        if "TrainingDiverged" in tail:
            raise TrainingDiverged(tail.strip().splitlines()[-1])
        raise RuntimeError(f"distributed training failed (exit {proc.returncode}); {log_path}:\n{tail}")
    return TrainResult(**json.loads(result_path.read_text()))


def _die_with_parent() -> None:
    """In the torchrun child: get SIGTERM if the launching process dies (a killed worker must not leave
    ranks writing into a run directory that a recovered job is about to resume)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: nothing to arm
        pass


def _progress_from_row(row: dict, total: int, epochs: float, batch: int) -> dict[str, Any]:
    ips = row.get("Speed/img_per_s", 0.0)
    left = total - row["step"]
    return {"step": row["step"], "total_steps": total, "epoch": row["epoch"], "epochs": epochs, "img_per_s": ips,
            "eta_s": left * batch / ips if ips > 0 else None,
            "losses": {k: row[k] for k in ("Loss/D", "Loss/G", "Loss/GP", "Loss/info", "W")}}


def _main(request_path: str) -> None:
    """One torchrun process: rank 0 writes the run directory and the result."""
    from dataclasses import asdict

    from .config import Config
    from .fsutil import atomic_write_text
    from .train import train

    req = json.loads(Path(request_path).read_text())
    cfg = Config.from_dict(req["config"])
    run_dir = Path(request_path).parent
    result = train(cfg, run_dir, should_stop=lambda: (run_dir / STOP_FILE).exists(),
                   resume=req["resume"], resume_from=req["resume_from"])
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(run_dir / RESULT_FILE, json.dumps(asdict(result)))


if __name__ == "__main__":
    _main(sys.argv[1])
