import json

import pytest
import torch

from model import load_generator, train, TrainingDiverged
from model.checkpoint import CheckpointError, load_state, read_latest
from model.config import DataConfig, apply_overrides, get_preset
from model.data import load_dataset
from model.networks import Generator
from model.sampling import generate


@pytest.fixture(scope="module")
def tiny_data(folder_dataset, tmp_path_factory):
    return load_dataset(DataConfig(path=str(folder_dataset), cache_dir=str(tmp_path_factory.mktemp("c"))), 16)


def tiny_cfg(*overrides):
    return apply_overrides(get_preset("tiny"), ["train.epochs=2", *overrides])


def test_a_few_steps_train_without_nan_and_write_the_run_directory(tiny_data, tmp_path):
    seen = []
    r = train(tiny_cfg(), tmp_path / "run", data=tiny_data, progress_fn=seen.append)
    assert r.status == "completed" and r.step == r.total_steps == seen[-1]["step"]
    assert [p["step"] for p in seen] == list(range(1, r.step + 1))
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == r.step  # log_every=1 in the tiny preset
    for row in rows:
        for k in ("Loss/D", "Loss/G", "Loss/GP", "Loss/info", "W", "Speed/img_per_s"):
            assert k in row and row[k] == row[k] and abs(row[k]) < 1e6  # finite, not NaN
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["class_names"] == ["Boot", "Sandal", "Shoe"] and cfg["model"]["resolution"] == 16
    samples = {p.name for p in (tmp_path / "run" / "samples").iterdir()}
    assert f"step-{r.step:09d}.png" in samples and f"cinfo-boot-step-{r.step:09d}.png" in samples
    G, info = load_generator(r.checkpoint)
    assert info.step == r.step and info.class_names == ["Boot", "Sandal", "Shoe"]
    assert all(torch.isfinite(p).all() for p in G.parameters())


@pytest.mark.parametrize("extra", [[], ["train.ema_beta=0.99"]], ids=["plain", "ema"])
def test_stop_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path, extra):
    full = train(tiny_cfg(*extra), tmp_path / "full", data=tiny_data)
    stopped = train(tiny_cfg(*extra), tmp_path / "split", data=tiny_data,
                    should_stop=lambda: True)  # stop after the first step
    assert stopped.status == "stopped" and stopped.step == 1
    assert read_latest(tmp_path / "split" / "checkpoints")["step"] == 1
    resumed = train(tiny_cfg(*extra), tmp_path / "split", data=tiny_data)
    assert resumed.status == "completed" and resumed.step == full.step
    a = load_state(tmp_path / "full" / "checkpoints" / f"step-{full.step:09d}.state.pt")
    b = load_state(tmp_path / "split" / "checkpoints" / f"step-{full.step:09d}.state.pt")
    assert a.get("ema_updates") == b.get("ema_updates")
    for part in ("G", "D") + (("G_ema",) if extra else ()):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=1e-6, msg=f"{part}.{k}")
    for part in ("opt_G", "opt_D", "opt_Q"):
        for i, s in a[part]["state"].items():
            torch.testing.assert_close(s["exp_avg"], b[part]["state"][i]["exp_avg"], rtol=0, atol=1e-6)


def test_ema_warms_up_instead_of_averaging_in_the_initial_weights():
    from model.train import Trainer
    cfg = apply_overrides(get_preset("tiny+ema"), [])
    m = Trainer(cfg, torch.device("cpu"))
    init = [p.clone() for p in m.G_ema.parameters()]
    with torch.no_grad():
        for p in m.G.parameters():
            p.add_(1.0)  # as if G had trained away from its initial weights
    m.update_ema(0.999)  # first update: beta_0 = min(0.999, 1/10) = 0.1
    for pe, p0, p in zip(m.G_ema.parameters(), init, m.G.parameters()):
        torch.testing.assert_close(pe, 0.1 * p0 + 0.9 * p)
    for _ in range(10_000):
        m.ema_updates += 1
    before = [p.clone() for p in m.G_ema.parameters()]
    m.update_ema(0.999)  # late in a run the configured beta applies
    for pe, b, p in zip(m.G_ema.parameters(), before, m.G.parameters()):
        torch.testing.assert_close(pe, 0.999 * b + 0.001 * p)


def test_resume_takes_the_architecture_from_the_checkpoint(tiny_data, tmp_path):
    train(tiny_cfg(), tmp_path / "run", data=tiny_data, should_stop=lambda: True)
    wider = tiny_cfg("model.g_channels=64")  # a caller asking for another width is ignored on resume
    r = train(wider, tmp_path / "run", data=tiny_data)
    G, _ = load_generator(r.checkpoint)
    assert G.cfg.g_channels == 32


def test_load_generator_rebuilds_the_same_outputs(tiny_data, tmp_path):
    r = train(tiny_cfg("train.epochs=0.5"), tmp_path / "run", data=tiny_data)
    state = load_state(tmp_path / "run" / "checkpoints" / f"step-{r.step:09d}.state.pt")
    G_ref = Generator(get_preset("tiny").model)
    G_ref.load_state_dict(state["G"])
    G, info = load_generator(r.checkpoint)
    torch.testing.assert_close(generate(G, 1, [0.3, -0.2], seed=5, n=3),
                               generate(G_ref, 1, [0.3, -0.2], seed=5, n=3), rtol=0, atol=1e-6)
    # image i of a request is reproducible alone from seed + i
    torch.testing.assert_close(generate(G, 2, None, seed=7, n=3)[2], generate(G, 2, None, seed=9, n=1)[0])


def test_divergence_stops_the_run_without_a_diverged_checkpoint(tiny_data, tmp_path):
    cfg = tiny_cfg("train.divergence_threshold=1e-9", "train.divergence_patience=2")
    with pytest.raises(TrainingDiverged, match="diverged at step 2"):
        train(cfg, tmp_path / "run", data=tiny_data)
    assert read_latest(tmp_path / "run" / "checkpoints") is None
    assert not list((tmp_path / "run" / "checkpoints").glob("*.safetensors"))
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged"


@pytest.mark.parametrize("modifier", ["mismatch", "lazy-gp", "ema", "spectral-norm", "sa-g", "plain"])
def test_preset_modifiers_train(tiny_data, tmp_path, modifier):
    cfg = apply_overrides(get_preset(f"tiny+{modifier}"), ["train.epochs=0.5"])
    r = train(cfg, tmp_path / "run", data=tiny_data)
    G, info = load_generator(r.checkpoint)
    assert info.extra["ema"] == (modifier == "ema")
    assert torch.isfinite(generate(G, 0, n=2)).all()


def test_broken_checkpoints_are_refused_with_a_reason(tiny_data, tmp_path):
    r = train(tiny_cfg("train.epochs=0.3"), tmp_path / "run", data=tiny_data)
    good = open(r.checkpoint, "rb").read()
    cases = {"truncated.safetensors": good[: len(good) // 2], "garbage.safetensors": b"\x00" * 64,
             "empty.safetensors": b""}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError):
            load_generator(tmp_path / name)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "missing.safetensors")
    # right format, wrong architecture: the tensors do not fit the config in the metadata
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open
    with safe_open(r.checkpoint, "pt") as f:
        meta = f.metadata()
    tensors = load_file(r.checkpoint)
    tensors["fc.weight"] = torch.zeros(3, 3)
    save_file(tensors, tmp_path / "wrong.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match="fc.weight"):
        load_generator(tmp_path / "wrong.safetensors")
    (tmp_path / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable resume state"):
        load_state(tmp_path / "state.pt")


@pytest.mark.parametrize("preset", ["tiny", "cpu", "paper"])
def test_generated_pixels_do_not_depend_on_batch_composition(preset):
    from model.data import to_uint8
    from model.sampling import forward, latent
    torch.manual_seed(0)
    cfg = get_preset(preset).model
    G = Generator(cfg).eval()
    n = 13
    z = torch.stack([latent(i, cfg.z_dim, cfg.info_dim)[0] for i in range(n)])
    c = torch.eye(cfg.num_classes)[torch.arange(n) % cfg.num_classes]
    ci = torch.rand(n, cfg.info_dim) * 2 - 1
    together = forward(G, z, c, ci)
    for i in (0, 5, 12):
        alone = forward(G, z[i:i + 1], c[i:i + 1], ci[i:i + 1])
        assert torch.equal(alone[0], together[i])
        assert (to_uint8(alone) == to_uint8(together[i:i + 1])).all()


def _two_steps(cfg, x, c):
    from model.train import Trainer
    torch.manual_seed(0)
    m = Trainer(cfg, torch.device("cpu"))
    for i in range(2):
        m.critic_step(x, c, i)
        m.generator_step(c)
    return m


def test_compiled_g_trains_like_eager_and_a_failing_compile_falls_back(monkeypatch):
    base = apply_overrides(get_preset("tiny"), ["model.d_dropout=0"])
    torch.manual_seed(1)
    x, c = torch.rand(8, 3, 16, 16) * 2 - 1, torch.arange(8) % 3
    eager = _two_steps(base, x, c)
    compiled = _two_steps(apply_overrides(base, ["train.compile=g"]), x, c)
    assert compiled.g_forward.compiled is not None  # it really ran compiled
    for (k, a), b in zip(eager.G.state_dict().items(), compiled.G.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=k)

    def broken(*a, **k):
        raise RuntimeError("no compiler here")
    monkeypatch.setattr(torch, "compile", lambda module: broken)
    with pytest.warns(UserWarning, match="G continues eager"):
        fallback = _two_steps(apply_overrides(base, ["train.compile=g"]), x, c)
    assert fallback.g_forward.compiled is None
    for (k, a), b in zip(eager.G.state_dict().items(), fallback.G.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=k)
