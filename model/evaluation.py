"""What a checkpoint does, in numbers, on the held-out split that training never sees.

  quality        Fréchet distance and KID in the features of the project's own shoe classifier
                 (classifier.py): comparable between our checkpoints, NOT to published FID numbers
  class fidelity the classifier's accuracy on generated images of each requested class
  coverage       precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020),
                 k = 5, and a mode-collapse flag per class (within-class diversity against real's)
  c_info control how well Q recovers c_info (R^2, when D is available), how monotonically each c_info
                 dimension moves a silhouette property (Spearman), how much it moves the others, and
                 whether the class survives across the sweeps
  memorisation   distance of generated images to their nearest training image, against the same for
                 held-out real images
  floor          the same metrics for held-out real images against training images
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .classifier import VERSION as CLF_VERSION
from .classifier import load_classifier, predict, save_classifier, train_classifier
from .data import ShoeData, to_uint8
from .networks import Discriminator, Generator
from .sampling import forward, latent

PROPERTIES = ("height", "length", "fill")


# --- distances between feature sets ------------------------------------------------------------

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 (Ca Cb)^1/2), with the root from an eigendecomposition."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    sa = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Ca^1/2
    m = sa @ cb @ sa  # symmetric PSD, same eigenvalues as Ca Cb
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(m), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr_sqrt)


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 500, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance: unbiased MMD^2 with the cubic polynomial kernel, over subsets."""
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), subset_size)
    d = a.shape[1]
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), n, replace=False)]
        y = b[rng.choice(len(b), n, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0, None))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall (k-NN manifolds), density and coverage of fake against real features."""
    d_rr, d_ff, d_rf = _pairwise(real, real), _pairwise(fake, fake), _pairwise(real, fake)
    r_real = np.sort(d_rr, axis=1)[:, k]  # radius of each real point's k-NN ball (index 0 is itself)
    r_fake = np.sort(d_ff, axis=1)[:, k]
    precision = float((d_rf < r_real[:, None]).any(axis=0).mean())
    recall = float((d_rf < r_fake[None, :]).any(axis=1).mean())
    density = float((d_rf < r_real[:, None]).sum(axis=0).mean() / k)
    coverage = float((d_rf.min(axis=1) < r_real).mean())
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def nn_distance(query: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> np.ndarray:
    return np.concatenate([_pairwise(query[i:i + chunk], ref).min(axis=1) for i in range(0, len(query), chunk)])


def mean_pairwise(x: np.ndarray) -> float:
    if len(x) < 2:
        return 0.0
    d = _pairwise(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


# --- shape of the shoe ---------------------------------------------------------------------------

def silhouette_properties(images: np.ndarray, threshold: int = 40) -> dict[str, np.ndarray]:
    """Height, length (as fractions of the side) and fill of the shoe's silhouette on white.

    A pixel belongs to the shoe when it is at least `threshold` below white in some channel; a row or
    column counts when it holds at least two such pixels (so stray specks do not stretch the box).
    """
    mask = (255 - images.min(axis=3).astype(np.int16)) >= threshold  # (N, R, R)
    R = images.shape[1]
    rows, cols = mask.sum(2) >= 2, mask.sum(1) >= 2  # (N, R)

    def extent(m):
        any_ = m.any(1)
        first, last = m.argmax(1), R - 1 - m[:, ::-1].argmax(1)
        return np.where(any_, (last - first + 1) / R, 0.0)

    return {"height": extent(rows), "length": extent(cols), "fill": mask.mean(axis=(1, 2))}


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(np.asarray(x, float)), rankdata(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


# --- the classifier ------------------------------------------------------------------------------

def dataset_key(data: ShoeData) -> str:
    """Identifies the data by content, the same on every machine."""
    h = hashlib.sha1()
    for d in sorted(data.digests):
        h.update(d.encode())
    return h.hexdigest()[:12]


def get_classifier(data: ShoeData, home: str | Path, log=print):
    """The versioned classifier for this data and resolution: loaded if saved, else trained and saved."""
    path = Path(home) / "classifiers" / f"{dataset_key(data)}-r{data.images.shape[1]}-v{CLF_VERSION}.safetensors"
    if path.exists():
        return (*load_classifier(path), path)
    clf, info = train_classifier(data, log=log)
    save_classifier(clf, info, path)
    log(f"classifier saved to {path}: held-out accuracy {info['heldout_accuracy']:.3f}")
    return clf, info, path


# --- evaluation ----------------------------------------------------------------------------------

def _generate_for(G: Generator, labels: np.ndarray, seed: int) -> np.ndarray:
    """One generated image per requested label (random z and c_info from seed + i), uint8."""
    cfg = G.cfg
    zs, infos = zip(*(latent(seed + i, cfg.z_dim, cfg.info_dim) for i in range(len(labels))))
    c = torch.eye(cfg.num_classes)[torch.as_tensor(labels)]
    out = [to_uint8(forward(G, torch.stack(zs[i:i + 256]), c[i:i + 256], torch.stack(infos[i:i + 256])))
           for i in range(0, len(labels), 256)]
    return np.concatenate(out)


def _set_metrics(name: str, images: np.ndarray, labels: np.ndarray, real_f: np.ndarray, real_labels: np.ndarray,
                 train_f: np.ndarray, clf, class_names: list[str], heldout_nn: np.ndarray | None) -> dict[str, Any]:
    feats, preds = predict(clf, images)
    out: dict[str, Any] = {"images": len(images), "fd": frechet_distance(feats, real_f)}
    out["kid"], out["kid_std"] = kid(feats, real_f)
    out.update(prdc(real_f, feats))
    out["class_fidelity"] = {"overall": float((preds == labels).mean()),
                             **{n: float((preds[labels == k] == k).mean()) for k, n in enumerate(class_names)
                                if (labels == k).any()}}
    per_class = {}
    for k, n in enumerate(class_names):
        fk, rk = feats[labels == k], real_f[real_labels == k]
        if len(fk) > 1 and len(rk) > 1:
            ratio = mean_pairwise(fk[:500]) / max(mean_pairwise(rk[:500]), 1e-9)
            per_class[n] = {"diversity_ratio": ratio, "mode_collapse": ratio < 0.5}
    out["diversity"] = per_class
    nn = nn_distance(feats, train_f)
    out["memorisation"] = {"nn_to_train_median": float(np.median(nn))}
    if heldout_nn is not None:
        out["memorisation"]["heldout_nn_to_train_median"] = float(np.median(heldout_nn))
        out["memorisation"]["ratio"] = float(np.median(nn) / max(np.median(heldout_nn), 1e-9))
        out["memorisation"]["closer_than_any_heldout"] = float((nn < heldout_nn.min()).mean())
    return out


def cinfo_control(G: Generator, clf, class_names: list[str], seeds: int = 16, steps: int = 9,
                  D: Discriminator | None = None, seed: int = 0) -> dict[str, Any]:
    cfg = G.cfg
    values = torch.linspace(-1, 1, steps)
    rho = {d: {p: [] for p in PROPERTIES} for d in range(cfg.info_dim)}
    correct, total = np.zeros(cfg.num_classes), 0
    for k in range(cfg.num_classes):
        for d in range(cfg.info_dim):
            zs = torch.stack([latent(seed + 5000 + s, cfg.z_dim, cfg.info_dim)[0] for s in range(seeds)])
            z = zs.repeat_interleave(steps, 0)  # (seeds*steps, z_dim): each seed swept along dim d
            ci = torch.zeros(seeds * steps, cfg.info_dim)
            ci[:, d] = values.repeat(seeds)
            c = torch.eye(cfg.num_classes)[k].expand(seeds * steps, -1)
            imgs = to_uint8(forward(G, z, c, ci))
            props = silhouette_properties(imgs)
            for s in range(seeds):
                sl = slice(s * steps, (s + 1) * steps)
                for p in PROPERTIES:
                    rho[d][p].append(spearman(values.numpy(), props[p][sl]))
            correct[k] += (predict(clf, imgs)[1] == k).sum()
        total = seeds * steps * cfg.info_dim
    dims = {}
    for d in range(cfg.info_dim):
        mean = {p: float(np.nanmean(rho[d][p])) for p in PROPERTIES}
        steered = max(PROPERTIES, key=lambda p: abs(mean[p]))
        dims[f"c_info[{d}]"] = {"spearman": mean, "steers": steered, "monotonicity": abs(mean[steered]),
                                "moves_others": max(abs(mean[p]) for p in PROPERTIES if p != steered)}
    out: dict[str, Any] = {"dims": dims, "grid_class_fidelity": {n: float(correct[k] / total)
                                                                 for k, n in enumerate(class_names)}}
    out["q_r2"] = q_r2(G, D, seed=seed) if D is not None else None
    return out


@torch.no_grad()
def q_r2(G: Generator, D: Discriminator, n: int = 512, seed: int = 0) -> list[float]:
    """R^2 of Q's regression of c_info on generated images, per info dimension."""
    cfg = G.cfg
    zs, infos = zip(*(latent(seed + 90_000 + i, cfg.z_dim, cfg.info_dim) for i in range(n)))
    z, ci = torch.stack(zs), torch.stack(infos)
    c = torch.eye(cfg.num_classes)[torch.arange(n) % cfg.num_classes]
    x = forward(G, z, c, ci)
    D.eval()
    q = torch.cat([D(x[i:i + 128], c[i:i + 128])[1] for i in range(0, n, 128)])
    sse = ((q - ci) ** 2).sum(0)
    sst = ((ci - ci.mean(0)) ** 2).sum(0)
    return (1 - sse / sst).tolist()


def standard_fid(fake: np.ndarray, real: np.ndarray, weights: str | Path, device: str = "cpu") -> float:
    """Standard FID (Inception-v3 pool3 features with the TF 2015-12-05 weights that published FIDs use)
    of two uint8 (N, R, R, 3) sets, computed by torch-fidelity from a weights file on disk.

    Optional: torch-fidelity imports torchvision, which needs a build matching the installed torch
    (PyPI's torchvision does not import beside the CPU build these machines use)."""
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"no Inception weights file at {path} (torch-fidelity's pt_inception-2015-12-05 .pth)")
    try:
        import torch_fidelity
    except Exception as e:  # missing, or torchvision not importable beside this torch
        raise RuntimeError("standard FID needs torch-fidelity and a torchvision built for this torch "
                           f"(pip install torch-fidelity torchvision==<the release matching torch>): {e}") from None

    class Uint8Images(torch.utils.data.Dataset):  # torch-fidelity wants uint8 (3, H, W) samples
        def __init__(self, images: np.ndarray):
            self.images = images

        def __len__(self) -> int:
            return len(self.images)

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)

    metrics = torch_fidelity.calculate_metrics(
        input1=Uint8Images(fake), input2=Uint8Images(real), fid=True, feature_extractor_weights_path=str(path),
        cuda=device.startswith("cuda"), cache=False, verbose=False)
    return float(metrics["frechet_inception_distance"])


def evaluate(G: Generator, data: ShoeData, home: str | Path, *, D: Discriminator | None = None,
             extra_generators: dict[str, Generator] | None = None, seed: int = 0, log=print,
             inception_weights: str | Path | None = None) -> dict[str, Any]:
    """The full report for one generator (and optionally others, e.g. the raw G beside its EMA)."""
    t0 = time.perf_counter()
    if data.images.shape[1] != G.cfg.resolution:
        raise ValueError(f"data prepared at {data.images.shape[1]} px for a {G.cfg.resolution} px model")
    clf, clf_info, clf_path = get_classifier(data, home, log=log)
    train, held = data.split("train"), data.split("holdout")
    if len(held) < 10:
        raise ValueError(f"the held-out split has only {len(held)} images; evaluation needs more")
    train_f, _ = predict(clf, train.images)
    held_f, _ = predict(clf, held.images)
    heldout_nn = nn_distance(held_f, train_f)
    names = data.class_names
    report: dict[str, Any] = {
        "note": "FD and KID use the features of the project's own shoe classifier (not Inception): they compare "
                "checkpoints of this project and are NOT comparable to published FID numbers.",
        "classifier": {"path": str(clf_path), **{k: clf_info[k] for k in ("version", "heldout_accuracy")}},
        "heldout_images": len(held)}
    log("evaluating generated images")
    fake = _generate_for(G, held.labels, seed)
    report["generated"] = _set_metrics("generated", fake, held.labels, held_f, held.labels, train_f, clf, names,
                                       heldout_nn)
    if inception_weights:
        log("standard FID (Inception-v3, torch-fidelity)")
        report["standard_fid"] = {"fid": standard_fid(fake, held.images, inception_weights),
                                  "weights": str(inception_weights), "images": len(fake),
                                  "note": f"at {G.cfg.resolution} px upsampled by Inception, against the "
                                          f"{len(held)} held-out images: comparable only with FIDs of the same "
                                          "resolution and sample size"}
    log("evaluating the c_info codes")
    report["c_info"] = cinfo_control(G, clf, names, D=D, seed=seed)
    # the floor: held-out real images against an equally sized, class-matched sample of training images
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.nonzero(train.labels == k)[0], (held.labels == k).sum(), replace=False)
                          for k in range(len(names))])
    floor = _set_metrics("floor", train.images[idx], train.labels[idx], held_f, held.labels, train_f, clf, names, None)
    floor["memorisation"] = {"heldout_nn_to_train_median": float(np.median(heldout_nn))}
    report["floor"] = floor
    for name, other in (extra_generators or {}).items():
        report[name] = _set_metrics(name, _generate_for(other, held.labels, seed), held.labels, held_f,
                                    held.labels, train_f, clf, names, heldout_nn)
    report["seconds"] = time.perf_counter() - t0
    return report


def summary_line(r: dict[str, Any]) -> str:
    g, f = r["generated"], r["floor"]
    dims = "; ".join(f"{d} steers {v['steers']} (|rho| {v['monotonicity']:.2f})" for d, v in r["c_info"]["dims"].items())
    return (f"FD {g['fd']:.2f} (floor {f['fd']:.2f}), KID {g['kid']:.4f} (floor {f['kid']:.4f}), "
            f"class fidelity {g['class_fidelity']['overall']:.3f} (classifier {r['classifier']['heldout_accuracy']:.3f}), "
            f"precision {g['precision']:.2f} recall {g['recall']:.2f} coverage {g['coverage']:.2f}, "
            f"memorisation ratio {g['memorisation']['ratio']:.2f}; {dims}")


def evaluate_checkpoint(checkpoint: str | Path, data_path: str, home: str | Path, layout: str = "auto",
                        out: str | Path | None = None, seed: int = 0, log=print,
                        inception_weights: str | Path | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate a servable checkpoint; D (for Q's R^2) and the raw G (beside an EMA) come from the
    resume state next to it when there is one. Writes the JSON report beside the checkpoint."""
    import json

    from .checkpoint import load_generator, load_state
    from .config import DataConfig, model_config_from_dict
    from .data import load_dataset
    from .fsutil import atomic_write_text

    G, info = load_generator(checkpoint)
    # the split the model was trained with, so that "held out" means what training never saw
    holdout = float(info.extra.get("holdout_fraction", DataConfig.holdout_fraction))
    data = load_dataset(DataConfig(path=data_path, layout=layout, holdout_fraction=holdout), G.cfg.resolution)
    if data.class_names != info.class_names:
        raise ValueError(f"the checkpoint's classes {info.class_names} are not the data's {data.class_names}")
    D, extra = None, {}
    state_path = Path(checkpoint).with_name(Path(checkpoint).name.replace(".safetensors", ".state.pt"))
    if state_path.exists():
        state = load_state(state_path)
        cfg = model_config_from_dict(json.loads(state["model_config"]))
        D = Discriminator(cfg)
        D.load_state_dict(state["D"])
        if "G_ema" in state:  # the servable G is the EMA: measure the raw G beside it
            raw = Generator(cfg)
            raw.load_state_dict(state["G"])
            extra["raw_generator"] = raw.eval()
    if inception_weights and not Path(inception_weights).is_file():  # fail before minutes of work
        raise ValueError(f"no Inception weights file at {inception_weights}")
    report = evaluate(G, data, home, D=D, extra_generators=extra, seed=seed, log=log,
                      inception_weights=inception_weights)
    report["model"] = {"checkpoint": str(checkpoint), "version": info.version, "step": info.step,
                       "preset": info.extra.get("preset"), "ema": info.extra.get("ema", False)}
    out = Path(out) if out else Path(checkpoint).with_name(Path(checkpoint).name.replace(".safetensors", ".eval.json"))
    atomic_write_text(out, json.dumps(report, indent=2, default=float))
    return report, out
