import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from hybridgan.cli import main
from model import train
from model.classifier import predict, train_classifier
from model.config import DataConfig, apply_overrides, get_preset
from model.data import load_dataset
from model.evaluation import (_generate_for, frechet_distance, kid, prdc, silhouette_properties, spearman)
from model.networks import Generator


@pytest.fixture(scope="module")
def data(folder_dataset, tmp_path_factory):
    # a larger held-out share than the default, so the tiny set has enough images to measure
    return load_dataset(DataConfig(path=str(folder_dataset), holdout_fraction=0.3,
                                   cache_dir=str(tmp_path_factory.mktemp("c"))), 16)


@pytest.fixture(scope="module")
def clf(data):
    model, info = train_classifier(data, epochs=6, batch_size=16, log=lambda *_: None)
    assert info["heldout_accuracy"] > 0.8  # the three synthetic classes are easy to tell apart
    return model


def test_distances_of_real_against_itself_are_near_zero_and_against_noise_large(data, clf):
    real = data.split("train").images
    f, _ = predict(clf, real)
    assert abs(frechet_distance(f, f)) < 1e-4
    same = prdc(f, f)
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0
    rng = np.random.default_rng(0)
    noise, _ = predict(clf, rng.integers(0, 256, real.shape, dtype=np.uint8))
    grey, _ = predict(clf, np.full_like(real, 128))
    held, _ = predict(clf, data.split("holdout").images)
    fd_real = frechet_distance(held, f)
    assert frechet_distance(noise, f) > 10 * fd_real and frechet_distance(grey, f) > 10 * fd_real
    assert prdc(f, noise)["precision"] < 0.2
    # KID, unbiased, of two disjoint halves of the real set is zero up to its noise; against noise far larger
    perm = rng.permutation(len(f))
    a, b = f[perm[: len(f) // 2]], f[perm[len(f) // 2:]]
    assert abs(kid(a, b, subsets=5)[0]) < 0.3 * kid(noise, f, subsets=5)[0]


def test_a_generator_that_ignores_the_class_scores_chance_class_fidelity(clf):
    torch.manual_seed(0)
    G = Generator(get_preset("tiny").model).eval()
    with torch.no_grad():
        G.embed.weight.zero_()  # E_G(c) = 0: the class input no longer reaches the image
    n = 30
    per_class = [predict(clf, _generate_for(G, np.full(n, k), seed=0))[1] for k in range(3)]
    fidelity = np.mean([(p == k).mean() for k, p in enumerate(per_class)])
    assert fidelity == pytest.approx(1 / 3)  # the same image under three labels is right once


def test_a_shape_property_moves_monotonically_on_images_built_to_move_it():
    imgs = []
    for h in range(4, 30, 3):  # a dark bar, taller and taller, same width
        im = Image.new("RGB", (32, 32), "white")
        ImageDraw.Draw(im).rectangle([6, 31 - h, 25, 31], fill=(40, 30, 20))
        imgs.append(np.asarray(im))
    props = silhouette_properties(np.stack(imgs))
    values = np.arange(len(imgs))
    assert spearman(values, props["height"]) == pytest.approx(1.0)
    assert spearman(values, props["fill"]) == pytest.approx(1.0)
    assert np.allclose(props["length"], 20 / 32)  # the other property does not move
    assert spearman(values, -props["height"]) == pytest.approx(-1.0)


def test_evaluate_cli_writes_a_full_report(folder_dataset, tmp_path, capsys):
    cfg = apply_overrides(get_preset("tiny+ema"), ["train.epochs=1", "data.holdout_fraction=0.3",
                                                   f"data.path={folder_dataset}",
                                                   f"data.cache_dir={tmp_path / 'c'}"])
    r = train(cfg, tmp_path / "run")
    assert main(["evaluate", "--checkpoint", r.checkpoint, "--data", str(folder_dataset),
                 "--home", str(tmp_path / "home")]) == 0
    report = json.loads(capsys.readouterr().out)
    saved = json.loads(open(r.checkpoint.replace(".safetensors", ".eval.json")).read())
    assert saved["generated"]["fd"] == report["generated"]["fd"]
    for part in ("generated", "floor", "raw_generator"):  # raw_generator: the EMA's un-averaged G
        for k in ("fd", "kid", "precision", "recall", "density", "coverage"):
            assert np.isfinite(report[part][k])
        assert set(report[part]["class_fidelity"]) == {"overall", "Boot", "Sandal", "Shoe"}
    assert report["floor"]["fd"] < report["generated"]["fd"]  # an untrained G is far from real
    dims = report["c_info"]["dims"]
    assert set(dims) == {"c_info[0]", "c_info[1]"} and all(d["steers"] in ("height", "length", "fill")
                                                           for d in dims.values())
    assert len(report["c_info"]["q_r2"]) == 2  # D came from the resume state beside the checkpoint
    assert report["generated"]["memorisation"]["ratio"] > 0
    assert "NOT comparable to published FID" in report["note"]


def test_standard_fid_hands_uint8_images_and_the_local_weights_to_torch_fidelity(tmp_path, monkeypatch):
    import sys
    import types

    from model.evaluation import standard_fid

    weights = tmp_path / "pt_inception-2015-12-05.pth"
    rng = np.random.default_rng(0)
    fake, real = (rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8) for _ in range(2))
    with pytest.raises(ValueError, match="no Inception weights file"):
        standard_fid(fake, real, weights)
    weights.write_bytes(b"weights")
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # not installed (as on these machines)
    with pytest.raises(RuntimeError, match="torch-fidelity"):
        standard_fid(fake, real, weights)
    seen = {}

    def calculate_metrics(**kw):
        seen.update(kw)
        return {"frechet_inception_distance": 12.5}

    monkeypatch.setitem(sys.modules, "torch_fidelity", types.SimpleNamespace(calculate_metrics=calculate_metrics))
    assert standard_fid(fake, real, weights) == 12.5
    assert seen["fid"] and seen["feature_extractor_weights_path"] == str(weights) and not seen["cuda"]
    first = seen["input1"][0]
    assert len(seen["input1"]) == 5 and first.dtype == torch.uint8 and first.shape == (3, 16, 16)
    assert torch.equal(first.permute(1, 2, 0), torch.from_numpy(fake[0]))
    assert torch.equal(seen["input2"][4].permute(1, 2, 0), torch.from_numpy(real[4]))
