import json

import pytest
from PIL import Image

from hybridgan.cli import main


def test_every_command_has_help(capsys):
    for cmd in ("presets", "data", "train", "sample", "grid"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert len(capsys.readouterr().out) > 100


def test_data_train_sample_grid_end_to_end(folder_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HYBRIDGAN_HOME", str(tmp_path / "home"))
    assert main(["data", "inspect", str(folder_dataset), "--resolution", "16"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 72 and summary["skipped"] == 1
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(folder_dataset), "--epochs", "0.5",
                 "--run-dir", str(run), "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "completed"
    ckpt = result["checkpoint"]
    assert main(["sample", "--checkpoint", ckpt, "--class", "sandal", "--n", "4", "--ncol", "4",
                 "--c-info", "0.5,-0.5", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (4 * 18 + 2, 18 + 2)
    assert main(["grid", "--checkpoint", ckpt, "--class", "0", "--steps", "3", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (3 * 18 + 2, 3 * 18 + 2)


def test_bad_input_gives_a_clear_error_not_a_traceback(folder_dataset, tmp_path, capsys):
    assert main(["train", "--preset", "nope", "--data", str(folder_dataset), "--run-dir", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "r")]) == 2
    assert "dataset not found" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(tmp_path / "none.safetensors"), "--class", "0",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
