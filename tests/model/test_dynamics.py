from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from keypoint_wm.model.dynamics import KeypointDynamics, select_best_sample


def test_forward_shapes(tiny_config: Callable) -> None:
    cfg = tiny_config()
    dyn = KeypointDynamics(cfg)
    x = torch.rand(2, 6, cfg.feature_size) * 2 - 1
    out = dyn(x, None, num_observed=3, p_own_observed=0.5, p_own_predicted=0.5)
    assert out.decoded.shape == (2, 6, 12)
    assert out.decoded.abs().max() <= 1.0
    assert out.kl.shape == (2, 3) and torch.all(out.kl >= 0)
    assert out.best_index.shape == (2, 6)
    assert out.best_index.max() < cfg.num_bom_samples
    assert out.hidden.shape == (2, 6, cfg.rnn_units)
    assert torch.all(out.hidden[:, 0] == 0)  # h_{-1}
    assert out.latent is not None and out.latent.shape == (2, 6, cfg.latent_size)
    assert out.prior_mean is not None and out.prior_mean.shape == (2, 6, cfg.latent_size)
    assert out.posterior_mean is not None and out.posterior_mean.shape == (2, 3, cfg.latent_size)


def test_select_best_picks_closest_and_only_it_gets_gradient() -> None:
    target = torch.zeros(2, 3)
    samples = torch.tensor(
        [
            [[1.0, 1.0, 1.0], [0.1, 0.0, 0.0]],
            [[0.2, 0.0, 0.1], [2.0, 2.0, 2.0]],
            [[0.5, 0.5, 0.5], [0.5, 0.0, 0.0]],
        ],
        requires_grad=True,
    )
    latents = torch.arange(6.0).view(3, 2, 1)  # [N, B, Z]: the z of each sample
    index, chosen, chosen_latent = select_best_sample(samples, target, latents)
    assert index.tolist() == [1, 0]
    torch.testing.assert_close(chosen, samples.detach()[[1, 0], [0, 1]])
    assert chosen_latent.flatten().tolist() == [2.0, 1.0]
    chosen.pow(2).sum().backward()
    assert samples.grad is not None
    nonzero = samples.grad.abs().sum(dim=-1) > 0  # [N, B]
    assert nonzero.tolist() == [[False, True], [True, False], [False, False]]


def test_bom_in_forward_beats_first_sample_at_first_step(tiny_config: Callable) -> None:
    cfg = tiny_config(num_bom_samples=20)
    dyn = KeypointDynamics(cfg)
    x = torch.rand(4, 3, cfg.feature_size) * 2 - 1
    torch.manual_seed(5)
    best = dyn(x, None, num_observed=3)
    torch.manual_seed(5)
    first = dyn(x, None, num_observed=3, select_best=False)
    err_best = (best.decoded[:, 0] - x[:, 0]).pow(2).mean(-1)
    err_first = (first.decoded[:, 0] - x[:, 0]).pow(2).mean(-1)
    assert torch.all(err_best <= err_first + 1e-7)
    assert torch.all(first.best_index == 0)


def test_prior_not_trained_by_future_loss_by_default(tiny_config: Callable) -> None:
    cfg = tiny_config()
    dyn = KeypointDynamics(cfg)
    x = torch.rand(2, 6, cfg.feature_size)
    out = dyn(x, None, num_observed=3)
    (out.decoded[:, 3:] - x[:, 3:]).pow(2).sum().backward()
    assert dyn.prior is not None
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in dyn.prior.parameters())
    assert dyn.decoder.out.weight.grad is not None


def test_action_conditioning_and_causality(tiny_config: Callable) -> None:
    cfg = tiny_config(action_size=2)
    dyn = KeypointDynamics(cfg)
    x = torch.rand(2, 6, cfg.feature_size)
    actions = torch.randn(2, 6, 2)
    t = 2
    changed = actions.clone()
    changed[:, t + 1] += 1.0  # the action that produces frame t+1

    def run(a: torch.Tensor):
        torch.manual_seed(3)
        return dyn(x, a, num_observed=3)

    base, edit = run(actions), run(changed)
    assert base.prior_mean is not None and edit.prior_mean is not None
    # Frames <= t are unaffected; the prior for t+1 sees the action.
    torch.testing.assert_close(base.prior_mean[:, : t + 1], edit.prior_mean[:, : t + 1])
    torch.testing.assert_close(base.decoded[:, : t + 1], edit.decoded[:, : t + 1])
    torch.testing.assert_close(base.hidden[:, : t + 1], edit.hidden[:, : t + 1])
    assert not torch.allclose(base.prior_mean[:, t + 1], edit.prior_mean[:, t + 1])
    # actions[:, 0] is never used.
    first = actions.clone()
    first[:, 0] += 5.0
    torch.testing.assert_close(run(first).decoded, base.decoded)


def test_actions_required_when_conditioned(tiny_config: Callable) -> None:
    dyn = KeypointDynamics(tiny_config(action_size=2))
    x = torch.rand(1, 4, 12)
    with pytest.raises(ValueError, match="actions"):
        dyn(x, None, num_observed=2)
    with pytest.raises(ValueError, match="action"):
        dyn.observe_step(dyn.initial_state(1), x[:, 0], None)


def test_scheduled_sampling_feeds_target_or_own_sample(tiny_config: Callable) -> None:
    cfg = tiny_config()
    dyn = KeypointDynamics(cfg)
    x = torch.rand(3, 6, cfg.feature_size)
    teacher = dyn(x, None, num_observed=3, p_own_observed=0.0, p_own_predicted=0.0)
    torch.testing.assert_close(teacher.feed, x)
    own = dyn(x, None, num_observed=3, p_own_observed=1.0, p_own_predicted=1.0)
    torch.testing.assert_close(own.feed, own.decoded)
    # Mixed: each (sequence, step) feeds one or the other, at the rate asked for each phase.
    x = torch.rand(600, 6, cfg.feature_size)
    mixed = dyn(x, None, num_observed=3, p_own_observed=0.2, p_own_predicted=0.7)
    is_target = (mixed.feed == x).all(-1)
    is_own = (mixed.feed == mixed.decoded).all(-1)
    assert torch.all(is_target ^ is_own)
    own_rate_observed = is_own[:, :3].float().mean().item()  # 1800 draws: std 0.01
    own_rate_predicted = is_own[:, 3:].float().mean().item()  # std 0.011
    assert own_rate_observed == pytest.approx(0.2, abs=0.05)
    assert own_rate_predicted == pytest.approx(0.7, abs=0.05)
    # Sequences draw independently: not the same choice for the whole batch at a step.
    assert 0 < is_own[:, 4].sum() < len(x)


def test_struct_rnn_has_no_latent_no_kl(tiny_config: Callable) -> None:
    cfg = tiny_config(dynamics="rnn")
    dyn = KeypointDynamics(cfg)
    assert dyn.prior is None and dyn.posterior is None
    x = torch.rand(2, 6, cfg.feature_size)
    out1 = dyn(x, None, num_observed=3, p_own_observed=1.0, p_own_predicted=1.0)
    out2 = dyn(x, None, num_observed=3, p_own_observed=1.0, p_own_predicted=1.0)
    torch.testing.assert_close(out1.decoded, out2.decoded)  # deterministic
    assert out1.latent is None
    assert torch.all(out1.kl == 0)
    torch.testing.assert_close(out1.feed[:, :3], x[:, :3])  # observed steps always observed
    torch.testing.assert_close(out1.feed[:, 3:], out1.decoded[:, 3:])


def test_online_steps_match_shapes(tiny_config: Callable) -> None:
    cfg = tiny_config(action_size=2)
    dyn = KeypointDynamics(cfg)
    h = dyn.initial_state(3)
    x = torch.rand(3, 12)
    step = dyn.observe_step(h, x, torch.zeros(3, 2))
    assert step.next_hidden is not None and step.next_hidden.shape == (3, cfg.rnn_units)
    # posterior_step + advance is observe_step (same noise)
    torch.manual_seed(1)
    split = dyn.posterior_step(h, x)
    assert split.next_hidden is None and split.latent is not None
    h_split = dyn.advance(h, split.feed, split.latent, torch.ones(3, 2))
    torch.manual_seed(1)
    joint = dyn.observe_step(h, x, torch.ones(3, 2))
    torch.testing.assert_close(h_split, joint.next_hidden)
    assert step.posterior is not None and step.kl is not None and step.kl.shape == (3,)
    imagined = dyn.imagine_step(joint.next_hidden, torch.zeros(3, 2))
    assert imagined.decoded.shape == (3, 12) and imagined.posterior is None
    torch.testing.assert_close(imagined.feed, imagined.decoded)
