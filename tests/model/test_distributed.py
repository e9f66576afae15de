"""Data-parallel training (model/distributed.py) with the gloo backend on CPU, launched by torchrun
through train() exactly as the CLI and the worker launch it."""

import json

import pytest
import torch

from model import train
from model.checkpoint import load_state
from model.config import ConfigError, apply_overrides, get_preset, model_config_from_dict
from model.networks import Discriminator, Generator
from model.distributed import Shard, SyncBatchNorm2d


def cfg_for(folder_dataset, cache, *overrides):
    # no dropout: its masks are drawn per process, the one thing that cannot match a single process
    return apply_overrides(get_preset("tiny"), [f"data.path={folder_dataset}", f"data.cache_dir={cache}",
                                                "model.d_dropout=0", "train.num_threads=1", *overrides])


def test_two_processes_take_the_same_steps_as_one_and_resume(folder_dataset, tmp_path):
    cache = tmp_path / "cache"
    single = train(cfg_for(folder_dataset, cache, "train.epochs=2"), tmp_path / "single")
    # two processes, stopped after one epoch and resumed by a second launch for the other
    seen = []
    first = train(cfg_for(folder_dataset, cache, "train.epochs=1", "train.nproc=2"), tmp_path / "ddp",
                  progress_fn=seen.append)
    assert first.status == "completed" and first.step < single.step
    assert seen and seen[-1]["step"] == first.step  # progress followed rank 0's metrics
    second = train(cfg_for(folder_dataset, cache, "train.epochs=2", "train.nproc=2"), tmp_path / "ddp")
    assert second.status == "completed" and second.step == single.step
    assert json.loads((tmp_path / "ddp" / "config.json").read_text())["processes"] == 2
    a = load_state(tmp_path / "single" / "checkpoints" / f"step-{single.step:09d}.state.pt")
    b = load_state(tmp_path / "ddp" / "checkpoints" / f"step-{second.step:09d}.state.pt")
    # Compare what the networks compute, not raw weights: Adam turns the float noise of structurally
    # zero gradients (a conv bias before BatchNorm) into lr-sized steps of either sign. Measured: the
    # two runs differ by ~1e-3 here; without the gradient all-reduce they differ by ~5e-2.
    cfg = model_config_from_dict(json.loads(a["model_config"]))
    torch.manual_seed(1)
    z, c, ci = torch.randn(16, cfg.z_dim), torch.arange(16) % 3, torch.rand(16, cfg.info_dim) * 2 - 1
    outs = []
    for state in (a, b, None):
        G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
        if state is not None:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
        with torch.no_grad():
            x = G(z, c, ci)
            outs.append((x, D(x, c)[0]))
    (x1, s1), (x2, s2), (x0, _) = outs
    assert (x1 - x2).abs().max() < 1e-2 and (s1 - s2).abs().max() < 1e-2
    assert (x1 - x0).abs().max() > 0.1  # and training did move G away from a fresh one


def test_sync_batchnorm_is_plain_batchnorm_in_one_process():
    torch.manual_seed(0)
    bn, sync = torch.nn.BatchNorm2d(5), SyncBatchNorm2d(5)
    sync.load_state_dict(bn.state_dict())
    x = torch.randn(6, 5, 4, 4)
    torch.testing.assert_close(sync(x), bn(x))
    torch.testing.assert_close(sync.running_var, bn.running_var)


def test_shards_are_strided_so_minibatch_stddev_groups_survive():
    x = torch.arange(32)
    a, b = Shard(0, 2).take(x), Shard(1, 2).take(x)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(32))
    # the global batch's groups of 4 are rows n, n+8, n+16, n+24 (MinibatchStd reshapes (G, M, ...));
    # rank 0's local groups (rows j, j+4, j+8, j+12 of its 16) are exactly the even global groups
    assert a.reshape(4, 4).t().tolist()[0] == [0, 8, 16, 24]


def test_nproc_must_divide_the_batch():
    with pytest.raises(ConfigError, match="nproc"):
        apply_overrides(get_preset("tiny"), ["train.nproc=3"]).validate()
