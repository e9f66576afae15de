import pytest
import torch

from model.config import MODIFIERS, get_preset
from model.layers import MinibatchStd, SelfAttention
from model.networks import Discriminator, Generator

PRESETS = ["tiny", "cpu", "cpu64", "model1", "model2"] + [f"tiny+{m}" for m in MODIFIERS]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_with_right_shapes(name):
    torch.manual_seed(0)
    cfg = get_preset(name).model
    G, D = Generator(cfg), Discriminator(cfg)
    B = 4
    z = torch.randn(B, cfg.z_dim)
    c = torch.arange(B) % cfg.num_classes
    c_info = torch.rand(B, cfg.info_dim) * 2 - 1
    x = G(z, c, c_info)
    assert x.shape == (B, 3, cfg.resolution, cfg.resolution)
    assert x.abs().max() <= 1.0  # tanh output
    score, q = D(x, c)
    assert score.shape == (B,) and q.shape == (B, cfg.info_dim)
    assert torch.isfinite(score).all() and torch.isfinite(q).all()


def test_model2_has_two_sa_layers_in_g_and_model1_none():
    count = lambda m: sum(isinstance(x, SelfAttention) for x in m.modules())
    assert count(Generator(get_preset("model1").model)) == 0
    assert count(Generator(get_preset("model2").model)) == 2
    assert count(Discriminator(get_preset("model1").model)) == 2
    assert count(Discriminator(get_preset("cpu+no-sa").model)) == 0


def test_minibatch_std_appends_group_std_channel():
    x = torch.zeros(4, 2, 3, 3)
    x[1] = 2.0  # group of 4: values 0, 2, 0, 0 -> population std = sqrt(0.75)
    y = MinibatchStd(group_size=4)(x)
    assert y.shape == (4, 3, 3, 3)
    torch.testing.assert_close(y[:, 2], torch.full((4, 3, 3), 0.75 ** 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(y[:, :2], x)


def test_sdpa_attention_matches_naive_forward_and_double_backward():
    torch.manual_seed(0)
    a = SelfAttention(16, impl="naive")
    with torch.no_grad():
        a.gamma.fill_(0.7)
    b = SelfAttention(16, impl="sdpa")
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ga = torch.autograd.grad(ya.square().sum(), x, create_graph=True)[0]
    gb = torch.autograd.grad(yb.square().sum(), x, create_graph=True)[0]
    torch.testing.assert_close(ga, gb, atol=1e-4, rtol=1e-4)
    # the gradient penalty's second derivative exists on both paths and agrees
    pa = torch.autograd.grad(ga.norm(), a.gamma)[0]
    pb = torch.autograd.grad(gb.norm(), b.gamma)[0]
    torch.testing.assert_close(pa, pb, atol=1e-4, rtol=1e-4)


def test_class_and_c_info_change_the_output():
    torch.manual_seed(0)
    cfg = get_preset("tiny").model
    G = Generator(cfg).eval()
    z = torch.randn(1, cfg.z_dim)
    base = G(z, torch.tensor([0]), torch.zeros(1, cfg.info_dim))
    other_class = G(z, torch.tensor([1]), torch.zeros(1, cfg.info_dim))
    other_info = G(z, torch.tensor([0]), torch.full((1, cfg.info_dim), 0.9))
    assert (base - other_class).abs().mean() > 1e-3
    assert (base - other_info).abs().mean() > 1e-3
    # and the same inputs give the same output
    torch.testing.assert_close(base, G(z, torch.tensor([0]), torch.zeros(1, cfg.info_dim)))


def test_class_blend_goes_through_the_same_embedding():
    torch.manual_seed(0)
    cfg = get_preset("tiny").model
    G = Generator(cfg).eval()
    z = torch.randn(1, cfg.z_dim)
    ci = torch.zeros(1, cfg.info_dim)
    onehot = torch.tensor([[0.0, 1.0, 0.0]])
    torch.testing.assert_close(G(z, onehot, ci), G(z, torch.tensor([1]), ci))


def test_channels_last_gives_the_same_result_as_nchw():
    torch.manual_seed(0)
    cfg = get_preset("tiny").model
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    z, c, ci = torch.randn(4, cfg.z_dim), torch.tensor([0, 1, 2, 0]), torch.rand(4, cfg.info_dim)
    x = G(z, c, ci)
    s = D(x, c)[0]
    G2 = Generator(cfg).eval().to(memory_format=torch.channels_last)
    D2 = Discriminator(cfg).eval().to(memory_format=torch.channels_last)
    G2.load_state_dict(G.state_dict()); D2.load_state_dict(D.state_dict())
    x2 = G2(z, c, ci)
    torch.testing.assert_close(x2, x, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(D2(x2.contiguous(memory_format=torch.channels_last), c)[0], s, atol=1e-4, rtol=1e-4)


def test_the_critic_judges_image_and_class_together():
    # If the class only added a per-class constant to the score, D(x, a) - D(x, b) would be the same
    # for every image and cancel in the WGAN loss: D could never judge whether image and class match.
    torch.manual_seed(0)
    for name in ("tiny", "cpu"):
        cfg = get_preset(name).model
        D = Discriminator(cfg).eval()
        x = torch.rand(4, 3, cfg.resolution, cfg.resolution) * 2 - 1
        a = D(x, torch.zeros(4, dtype=torch.long))[0]
        b = D(x, torch.ones(4, dtype=torch.long))[0]
        gap = a - b
        assert gap.std() > 1e-4 * gap.abs().mean() + 1e-7, name


def test_projection_term_scores_class_against_the_image_features():
    # score(x, c) = head(h) + <V[c], h>: with V zeroed the class-free part is left; with V set, the
    # score of class k moves by exactly <V[k], h>, i.e. differently for each image.
    torch.manual_seed(0)
    cfg = get_preset("tiny+proj").model
    D = Discriminator(cfg).eval()
    x = torch.rand(4, 3, cfg.resolution, cfg.resolution) * 2 - 1
    c = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        h = D.features(x, c)
        base = D.score(h).squeeze(1)
        torch.testing.assert_close(D(x, c)[0], base + (D.proj.weight.t()[c] * h).sum(1))
        D.proj.weight.zero_()
        torch.testing.assert_close(D(x, c)[0], base)
    assert get_preset("tiny").model.d_projection is False  # the paper's model has no such term
