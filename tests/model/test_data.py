import hashlib
import shutil

import numpy as np
import pytest

from model.config import DataConfig
from model.data import (Batches, DataError, holdout_of, load_dataset, open_source, prepare_image,
                        utzap_class, UTZAP_EASY, UTZAP_HARD)

from ..conftest import jpeg_bytes, shoe_like


def test_folder_tree_reads_classes_and_skips_corrupt_images_with_a_count(folder_dataset, cache_dir):
    data = load_dataset(DataConfig(path=str(folder_dataset), cache_dir=str(cache_dir)), 16)
    assert data.class_names == ["Boot", "Sandal", "Shoe"]
    assert len(data) == 72 and data.images.shape == (72, 16, 16, 3) and data.images.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [24, 24, 24]
    assert len(data.skipped) == 1 and "broken.jpg" in data.skipped[0]
    assert data.ignored == 1  # notes.txt
    s = data.summary()
    assert s["skipped"] == 1 and s["train"] + s["holdout"] == 72


def test_manifest_zip_drops_marked_duplicates(manifest_zip, cache_dir):
    data = load_dataset(DataConfig(path=str(manifest_zip), cache_dir=str(cache_dir)), 16)
    assert len(data) == 36 and data.duplicates == 0  # the marked duplicate never reaches decoding
    src = open_source(DataConfig(path=str(manifest_zip)))
    assert src.layout == "manifest" and len(src.entries) == 36


def test_byte_identical_images_are_kept_once(tmp_path, cache_dir):
    for name in ("A", "B"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "d" / name / f"{i}.jpg").write_bytes(jpeg_bytes(shoe_like(ord(name), i)))
    shutil.copy(tmp_path / "d" / "A" / "0.jpg", tmp_path / "d" / "A" / "copy.jpg")
    data = load_dataset(DataConfig(path=str(tmp_path / "d"), cache_dir=str(cache_dir)), 8)
    assert len(data) == 6 and data.duplicates == 1


def test_pad_to_square_on_white_keeps_the_shape():
    from PIL import Image
    im = Image.new("RGB", (40, 20), (0, 0, 0))  # a black 2:1 bar
    arr = prepare_image(jpeg_bytes(im), 20)
    assert arr.shape == (20, 20, 3)
    assert arr[0, 10].min() > 240 and arr[-1, 10].min() > 240  # white padding above and below
    assert arr[10, 10].max() < 20  # the bar itself in the middle


def test_decompression_bombs_and_garbage_are_refused():
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("L", (7000, 7000)).save(buf, format="PNG")  # 49 MP > the guard
    with pytest.raises(ValueError, match="too large"):
        prepare_image(buf.getvalue(), 16)
    with pytest.raises(Exception):
        prepare_image(b"GIF89a garbage", 16)


def test_holdout_split_is_by_content_and_stable(folder_dataset, tmp_path, cache_dir):
    a = load_dataset(DataConfig(path=str(folder_dataset), cache_dir=str(cache_dir)), 16)
    # same images in another folder, another order of discovery, no cache: same images held out
    copy = tmp_path / "copy"
    shutil.copytree(folder_dataset, copy)
    (copy / "Boot" / "boot (0).jpg").rename(copy / "Boot" / "zzz-renamed.jpg")
    b = load_dataset(DataConfig(path=str(copy)), 16, use_cache=False)
    held_a = {d for d, h in zip(a.digests, a.holdout) if h}
    held_b = {d for d, h in zip(b.digests, b.holdout) if h}
    assert held_a == held_b and 0 < len(held_a) < len(a)
    # the rule itself: a fixed hash always lands on the same side
    digest = hashlib.sha1(b"shoe").digest()
    assert holdout_of(digest, 0.1) == (int.from_bytes(digest[:8], "big") / 2**64 < 0.1)
    assert not holdout_of(digest, 0.0)
    # about 10% of many images
    many = [holdout_of(hashlib.sha1(str(i).encode()).digest(), 0.1) for i in range(20000)]
    assert 0.09 < np.mean(many) < 0.11


def test_cache_is_hit_and_rebuilt_when_damaged(folder_dataset, cache_dir):
    cfg = DataConfig(path=str(folder_dataset), cache_dir=str(cache_dir))
    first = load_dataset(cfg, 16)
    files = sorted(p.name for p in cache_dir.iterdir())
    assert any(f.endswith(".npy") for f in files) and any(f.endswith(".json") for f in files)
    npy = next(cache_dir.glob("*.npy"))
    again = load_dataset(cfg, 16)
    assert np.array_equal(first.images, again.images)
    npy.write_bytes(b"truncated")  # a damaged cache is rebuilt, not trusted
    rebuilt = load_dataset(cfg, 16)
    assert np.array_equal(first.images, rebuilt.images)


def test_utzap50k_tree_maps_to_the_papers_12_and_5_classes(tmp_path, cache_dir):
    root = tmp_path / "ut-zap50k-images-square"
    tree = {("Boots", "Ankle"): "Boots", ("Boots", "Knee High"): "Boots",
            ("Sandals", "Flat"): "Flip Flops", ("Sandals", "Heel"): "Sandals",
            ("Sandals", "Athletic"): "Sandals", ("Slippers", "Slipper Flats"): "Slippers",
            ("Shoes", "Boat Shoes"): "Boat Shoes", ("Shoes", "Clogs and Mules"): "Clogs and Mules",
            ("Shoes", "Firstwalker"): "Firstwalker", ("Shoes", "Flats"): "Flats",
            ("Shoes", "Heels"): "Heels", ("Shoes", "Loafers"): "Loafers", ("Shoes", "Oxfords"): "Oxfords",
            ("Shoes", "Sneakers and Athletic Shoes"): "Sneakers and Athletic Shoes",
            ("Shoes", "Crib Shoes"): None, ("Shoes", "Prewalker"): None}
    for n, ((cat, sub), _) in enumerate(tree.items()):
        d = root / cat / sub / "Some Brand"
        d.mkdir(parents=True)
        for i in range(2):
            (d / f"{n}.{i}.jpg").write_bytes(jpeg_bytes(shoe_like(n, i)))
    for (cat, sub), want in tree.items():
        assert utzap_class([cat, sub, "Brand"], list(UTZAP_HARD)) == want, (cat, sub)
    hard = load_dataset(DataConfig(path=str(tmp_path), layout="auto", cache_dir=str(cache_dir)), 8)
    assert hard.class_names == sorted(UTZAP_HARD) and len(hard.class_names) == 12
    assert len(hard) == 2 * 14  # the two infant subcategories are dropped
    easy = load_dataset(DataConfig(path=str(root), layout="utzap50k-easy", cache_dir=str(cache_dir)), 8)
    assert easy.class_names == sorted(UTZAP_EASY)
    assert np.bincount(easy.labels).tolist() == [2, 4, 2, 2, 2]  # boots has two subcategories


def test_unusable_sources_get_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_source(DataConfig(path=str(tmp_path / "missing")))
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        open_source(DataConfig(path=str(bad)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        open_source(DataConfig(path=str(tmp_path / "empty")))


def test_batches_are_resumable_and_flip(folder_dataset, cache_dir):
    import torch
    data = load_dataset(DataConfig(path=str(folder_dataset), cache_dir=str(cache_dir)), 16).split("train")
    b = Batches(data, 8, seed=3, hflip=True, device=torch.device("cpu"))
    full = list(b.epoch(1))
    tail = list(b.epoch(1, start_step=2))
    assert len(full) == len(data) // 8 and len(tail) == len(full) - 2
    for (x1, c1), (x2, c2) in zip(full[2:], tail):
        assert torch.equal(x1, x2) and torch.equal(c1, c2)
    x, c = full[0]
    assert x.shape == (8, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert x.is_contiguous(memory_format=torch.channels_last)
    noflip = list(Batches(data, 8, seed=3, hflip=False, device=torch.device("cpu")).epoch(1))[0][0]
    flipped = [not torch.equal(a, b) for a, b in zip(x, noflip)]
    assert any(flipped) and not all(flipped)  # each image flipped with probability 1/2
    for a, b, f in zip(x, noflip, flipped):
        assert torch.equal(a, b.flip(2) if f else b)  # a flip is a mirror along the width
    with pytest.raises(DataError, match="fewer than one batch"):
        Batches(data, 1000, 0, True, torch.device("cpu"))
