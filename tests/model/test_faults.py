"""Faults injected into real training processes: SIGKILL during a checkpoint write, a full disk."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model import load_generator, train
from model.checkpoint import read_latest
from model.config import DataConfig, apply_overrides, get_preset
from model.data import load_dataset

ROOT = Path(__file__).resolve().parents[2]


def run_cli(args, env_extra, home):
    env = {**os.environ, "HYBRIDGAN_HOME": str(home), **env_extra}
    return subprocess.run([sys.executable, "-m", "hybridgan.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_sigkill_during_a_checkpoint_write_leaves_the_last_complete_checkpoint(folder_dataset, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data", str(folder_dataset), "--run-dir", str(run), "--epochs", "3",
            "--quiet"]
    # checkpoint writes: 1 = step 10's generator, 2 = step 10's state, 3 = step 20's generator: die there
    killed = run_cli(args, {"HYBRIDGAN_FAILPOINTS": "checkpoint=kill@3"}, tmp_path / "home")
    assert killed.returncode == -9, killed.stderr[-2000:]
    ckpts = run / "checkpoints"
    assert read_latest(ckpts)["step"] == 10
    assert list(ckpts.glob(".step-000000020*.tmp"))  # the interrupted write never got its real name
    assert not (ckpts / "step-000000020.safetensors").exists()
    G, info = load_generator(ckpts / "step-000000010.safetensors")
    assert info.step == 10 and all(torch.isfinite(p).all() for p in G.parameters())
    # a rerun resumes from step 10 and finishes; the stale temp file is cleaned away
    done = run_cli(args, {}, tmp_path / "home")
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"status": "completed"' in done.stdout
    assert read_latest(ckpts)["step"] > 20 and not list(ckpts.glob(".*.tmp"))


def test_a_full_disk_during_a_checkpoint_fails_the_run_and_keeps_the_previous_checkpoint(
        folder_dataset, tmp_path, monkeypatch):
    data = load_dataset(DataConfig(path=str(folder_dataset), cache_dir=str(tmp_path / "c")), 16)
    cfg = apply_overrides(get_preset("tiny"), ["train.epochs=3"])
    monkeypatch.setenv("HYBRIDGAN_FAILPOINTS", "checkpoint=enospc@3")
    with pytest.raises(OSError, match="No space left"):
        train(cfg, tmp_path / "run", data=data)
    ckpts = tmp_path / "run" / "checkpoints"
    assert read_latest(ckpts)["step"] == 10
    assert load_generator(ckpts / "step-000000010.safetensors")[1].step == 10
    assert not list(ckpts.glob(".*.tmp"))  # a failed write cleans its temp file
