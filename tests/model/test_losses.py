import torch

from model.config import get_preset
from model.losses import critic_wgan_loss, generator_loss, gradient_penalty, info_loss
from model.networks import Discriminator, Generator


def test_gradient_penalty_on_a_linear_critic_with_known_gradient_norm():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    c = torch.zeros(6, dtype=torch.long)
    for norm in (0.25, 1.0, 3.0):
        w = torch.randn(3, 4, 4)
        w = w / w.norm() * norm  # D(x) = <w, x>: grad_x D = w everywhere, ||grad|| = norm
        gp = gradient_penalty(lambda x, _c: (x * w).flatten(1).sum(1), real, fake, c)
        torch.testing.assert_close(gp, torch.tensor((norm - 1) ** 2), atol=1e-5, rtol=1e-5)


def test_gradient_penalty_is_differentiable_for_the_critic_parameters():
    w = torch.full((3, 2, 2), 0.5, requires_grad=True)  # ||w|| = sqrt(12)*0.5 = 1.732
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = gradient_penalty(lambda x, _c: (x * w).flatten(1).sum(1), real, fake, torch.zeros(4))
    (g,) = torch.autograd.grad(gp, w)
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    n = w.detach().norm()
    torch.testing.assert_close(g, 2 * (n - 1) * w.detach() / n, atol=1e-5, rtol=1e-5)


def test_wgan_losses_signs():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert critic_wgan_loss(real, fake).item() == -3.0  # D(fake) - D(real)
    assert generator_loss(fake).item() == 0.0


def test_info_loss_gradient_reaches_G_Q_and_D_head_but_not_the_critic_head():
    torch.manual_seed(0)
    cfg = get_preset("tiny").model
    G, D = Generator(cfg), Discriminator(cfg)
    z, c = torch.randn(4, cfg.z_dim), torch.tensor([0, 1, 2, 0])
    c_info = torch.rand(4, cfg.info_dim) * 2 - 1
    _, q = D(G(z, c, c_info), c)
    info_loss(q, c_info).backward()

    def reached(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert reached(G.fc) and reached(G.blocks) and reached(G.embed)  # G, including E_G
    assert reached(D.q)  # Q
    assert reached(D.pile) and reached(D.pre_cond) and reached(D.embed)  # D_head, including E_D
    assert not reached(D.score)  # the critic's own head is not trained by the info loss
