"""A shoe classifier trained with the project's own code: the offline feature extractor of evaluation.

No Inception weights can be downloaded here, so evaluation embeds images with this small CNN trained
on the training split of the same data. Its features give a Fréchet distance and KID that compare
checkpoints of this project with each other; they are NOT comparable to published FID numbers.
Saved as safetensors with its config, classes, version and held-out accuracy in the metadata.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import nn

from .checkpoint import CheckpointError
from .data import ShoeData
from .fsutil import atomic_write_bytes

FORMAT = "hybridgan.classifier/1"
VERSION = 1  # bump when the architecture or its training recipe changes


@dataclass
class ClassifierConfig:
    resolution: int
    num_classes: int
    width: int = 32
    feat_dim: int = 128


class ShoeClassifier(nn.Module):
    def __init__(self, cfg: ClassifierConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        layers, cin, r = [], 3, cfg.resolution
        for cout in (w, 2 * w, 4 * w, 4 * w):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if r > 4:
                layers.append(nn.MaxPool2d(2))
                r //= 2
            cin = cout
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, cfg.feat_dim)
        self.head = nn.Linear(cfg.feat_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, R, R) in [-1, 1] -> (B, feat_dim) embedding."""
        h = self.body(x).mean(dim=(2, 3))  # global average pool: (B, C)
        return F.relu(self.proj(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _to_input(images: np.ndarray) -> torch.Tensor:
    """(N, R, R, 3) uint8 -> (N, 3, R, R) float in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def train_classifier(data: ShoeData, epochs: int = 3, batch_size: int = 64, seed: int = 0,
                     log=print) -> tuple[ShoeClassifier, dict]:
    """Train on the training split, report accuracy on the held-out split."""
    torch.manual_seed(seed)
    train, held = data.split("train"), data.split("holdout")
    cfg = ClassifierConfig(resolution=int(data.images.shape[1]), num_classes=len(data.class_names))
    clf = ShoeClassifier(cfg)
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    x_all, y_all = _to_input(train.images), torch.from_numpy(train.labels)
    steps = max(1, len(y_all) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        clf.train()
        perm = torch.randperm(len(y_all), generator=g)
        for s in range(steps):
            idx = perm[s * batch_size:(s + 1) * batch_size]
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=g) < 0.5
            x[flip] = x[flip].flip(3)
            loss = F.cross_entropy(clf(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log(f"classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}")
    clf.eval()
    acc = accuracy(clf, held.images, held.labels) if len(held) else float("nan")
    info = {"version": VERSION, "heldout_accuracy": acc, "heldout_images": len(held), "train_images": len(train),
            "epochs": epochs, "seconds": time.perf_counter() - t0, "class_names": data.class_names}
    return clf, info


@torch.no_grad()
def predict(clf: ShoeClassifier, images: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images -> (features (N, feat_dim), predicted class (N,))."""
    clf.eval()
    feats, preds = [], []
    for i in range(0, len(images), batch):
        f = clf.features(_to_input(images[i:i + batch]))
        feats.append(f.numpy())
        preds.append(clf.head(f).argmax(1).numpy())
    if not feats:
        return np.zeros((0, clf.cfg.feat_dim), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(feats).astype(np.float64), np.concatenate(preds)


def accuracy(clf: ShoeClassifier, images: np.ndarray, labels: np.ndarray) -> float:
    return float((predict(clf, images)[1] == labels).mean())


def save_classifier(clf: ShoeClassifier, info: dict, path: str | Path) -> Path:
    tensors = {k: v.detach().contiguous() for k, v in clf.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(asdict(clf.cfg)), "info": json.dumps(info)}
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


def load_classifier(path: str | Path) -> tuple[ShoeClassifier, dict]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a hybridgan classifier")
            state = {k: f.get_tensor(k) for k in f.keys()}
        clf = ShoeClassifier(ClassifierConfig(**json.loads(meta["config"])))
        clf.load_state_dict(state)
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} is not a loadable classifier: {e}") from None
    return clf.eval(), json.loads(meta["info"])
