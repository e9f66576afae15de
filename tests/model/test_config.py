import pytest

from model.config import Config, ConfigError, apply_overrides, get_preset


def test_paper_defaults_are_the_papers_numbers():
    cfg = get_preset("model1")
    t = cfg.train
    assert (t.gp_weight, t.info_weight, t.lr_g, t.lr_q, t.betas, t.batch_size, t.epochs) == \
        (10.0, 10.0, 6e-5, 6e-5, (0.5, 0.999), 32, 200.0)
    assert t.lr_d == pytest.approx(4 * 6e-5)
    assert cfg.model.info_dim == 2 and cfg.model.minibatch_std and len(cfg.model.d_attn_resolutions) == 2
    assert cfg.model.g_attn_resolutions == ()


def test_failed_tries_and_ablations_are_presets():
    assert get_preset("cpu+gp3").train.gp_weight == 3.0
    assert get_preset("cpu+mismatch").train.mismatch_weight > 0
    assert get_preset("cpu+spectral-norm").model.spectral_norm == "GD"
    assert get_preset("cpu+no-info").train.info_weight == 0
    assert not get_preset("cpu+no-mbstd").model.minibatch_std
    plain = get_preset("cpu+plain")
    assert plain.model.d_attn_resolutions == () and not plain.model.minibatch_std and plain.train.info_weight == 0
    assert len(get_preset("cpu+sa-g1").model.g_attn_resolutions) == 1


def test_overrides_are_typed_and_validated():
    cfg = apply_overrides(get_preset("tiny"), ["train.epochs=2.5", "model.resolution=32",
                                               "model.d_attn_resolutions=16,8", "data.hflip=false"])
    assert cfg.train.epochs == 2.5 and cfg.model.resolution == 32
    assert cfg.model.d_attn_resolutions == (16, 8) and cfg.data.hflip is False
    for bad, msg in [("train.lr_g=abc", "not a valid float"), ("model.nope=1", "unknown field"),
                     ("model.resolution=48", "power of two"), ("train.batch_size=1", ">= 2"),
                     ("epochs=3", "must look like"), ("model.g_attn_resolutions=7", "feature-map sizes"),
                     ("train.lr_g=nan", "not a valid float")]:
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(get_preset("tiny"), [bad])


def test_unknown_preset_names_say_what_exists():
    with pytest.raises(ConfigError, match="unknown preset base"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="unknown preset modifier"):
        get_preset("cpu+turbo")


def test_config_round_trips_through_dict():
    cfg = get_preset("model2")
    again = Config.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(ConfigError, match="unknown model field"):
        Config.from_dict({"model": {"bogus": 1}})
