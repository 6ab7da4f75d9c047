"""The training pass of the dynamics, pinned to the implementation it replaced.

``KeypointDynamics.forward`` is a loop over the online steps (``posterior_step``,
``prior_step``, ``advance``). :func:`reference_forward` below is a FROZEN copy of the
earlier, self-contained loop (it lives only here, as the reference). On a fixed batch and
seed, the model's training losses, its gradients and every output of the dynamics must equal
the reference's BITWISE on the CPU: both run the same operations on the same shapes in the
same order (so also the autograd engine accumulates the gradients in the same order) and
draw the same random numbers in the same order; nothing is fused on the CPU in eager mode.
"""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from keypoint_wm.model import LossSchedule, StructVRNN
from keypoint_wm.model.dynamics import DynamicsOutput, KeypointDynamics
from keypoint_wm.model.losses import kl_normal
from keypoint_wm.model.outputs import ScheduleValue, is_full, is_off


# ----------------------------------------------------------------------- frozen reference
def _reference_select_best(samples: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    errors = (samples - target.unsqueeze(0)).pow(2).mean(dim=-1)  # [N, B]
    index = errors.argmin(dim=0)
    chosen = samples[index, torch.arange(samples.shape[1], device=samples.device)]
    return index, chosen


def _reference_scheduled_sample(target: Tensor, own: Tensor, p_own: ScheduleValue) -> Tensor:
    if is_off(p_own):
        return target
    if is_full(p_own):
        return own
    use_own = torch.rand(target.shape[0], 1, device=target.device) < p_own
    return torch.where(use_own, own, target)


def reference_forward(
    self: KeypointDynamics,
    keypoints: Tensor,
    actions: Tensor | None,
    num_observed: int,
    p_own_observed: ScheduleValue = 0.0,
    p_own_predicted: ScheduleValue = 0.0,
    num_samples: int | None = None,
    select_best: bool = True,
) -> DynamicsOutput:
    """The earlier ``KeypointDynamics.forward``: ``keypoints [B, T, D]``, ``actions [B, T, A]``
    or None -> :class:`DynamicsOutput` (frozen; do not edit)."""
    batch, steps, _ = keypoints.shape
    actions = self._check_actions(actions, batch, steps)
    samples = self.config.num_samples if num_samples is None else num_samples
    device = keypoints.device
    with torch.autocast(device_type=device.type, enabled=False):
        keypoints = keypoints.float()
        h = self.initial_state(batch, device)
        rows = torch.arange(batch, device=device)
        out: dict[str, list[Tensor]] = {
            k: [] for k in ("decoded", "kl", "index", "hidden", "latent", "feed", "pm", "ps")
        }
        out.update(qm=[], qs=[])
        for t in range(steps):
            observed = t < num_observed
            target = keypoints[:, t]
            out["hidden"].append(h)
            z_t: Tensor | None = None
            if self.stochastic:
                assert self.prior is not None and self.posterior is not None
                prior = self.prior(h)
                out["pm"].append(prior.mean)
                out["ps"].append(prior.std)
                if observed:
                    belief = self.posterior(torch.cat([h, target], dim=-1))
                    out["qm"].append(belief.mean)
                    out["qs"].append(belief.std)
                    out["kl"].append(kl_normal(belief.mean, belief.std, prior.mean, prior.std))
                elif self.config.future_loss_trains_prior:
                    belief = prior
                else:
                    belief = type(prior)(prior.mean.detach(), prior.std.detach())
                noise = torch.randn(samples, batch, self.latent_size, device=device)
                z = belief.mean + belief.std * noise  # [N, B, Z]
                decoded_all = self.decoder(h, z)  # [N, B, D]
                if samples > 1 and select_best:
                    index, decoded = _reference_select_best(decoded_all, target)
                else:
                    index = torch.zeros(batch, dtype=torch.long, device=device)
                    decoded = decoded_all[0]
                z_t = z[index, rows]
                out["latent"].append(z_t)
            else:
                decoded = self.decoder(h)
                index = torch.zeros(batch, dtype=torch.long, device=device)
                if observed:
                    out["kl"].append(torch.zeros(batch, device=device))
            out["decoded"].append(decoded)
            out["index"].append(index)
            p_own: ScheduleValue
            if observed and not self.stochastic:
                p_own = 0.0
            else:
                p_own = p_own_observed if observed else p_own_predicted
            feed = _reference_scheduled_sample(target, decoded, p_own)
            out["feed"].append(feed)
            if t + 1 < steps:
                action_next = None if actions is None else actions[:, t + 1]
                h = self.advance(h, feed, z_t, action_next)

    def stack(name: str) -> Tensor | None:
        return torch.stack(out[name], dim=1) if out[name] else None

    decoded_seq, kl_seq, index_seq = stack("decoded"), stack("kl"), stack("index")
    hidden_seq, feed_seq = stack("hidden"), stack("feed")
    assert decoded_seq is not None and kl_seq is not None and index_seq is not None
    assert hidden_seq is not None and feed_seq is not None
    return DynamicsOutput(
        decoded=decoded_seq,
        kl=kl_seq,
        best_index=index_seq,
        hidden=hidden_seq,
        latent=stack("latent"),
        feed=feed_seq,
        prior_mean=stack("pm"),
        prior_std=stack("ps"),
        posterior_mean=stack("qm"),
        posterior_std=stack("qs"),
    )


# ----------------------------------------------------------------------- the pins
VARIANTS = {
    "vrnn-bom-actions": dict(action_size=2),
    "vrnn-no-bom-prior-trained": dict(use_bom=False, future_loss_trains_prior=True),
    "rnn": dict(dynamics="rnn", action_size=2),
}
SCHEDULES = {
    "start": LossSchedule.start(),
    "mixed-floats": LossSchedule(0.005, 0.4, 0.3),
    "final": LossSchedule.final(0.01),
    "tensors": LossSchedule(torch.tensor(0.005), torch.tensor(0.6), torch.tensor(0.25)),
}


def _training_pass(model: StructVRNN, images: Tensor, actions: Tensor | None, schedule):
    """Losses and gradients of one training step from seed 11."""
    model.zero_grad(set_to_none=True)
    torch.manual_seed(11)
    out = model(images, actions, schedule)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_losses_and_gradients_equal_the_reference_bitwise(
    tiny_config: Callable, moving_dots: Callable, variant: str, schedule: str
) -> None:
    cfg = tiny_config(**VARIANTS[variant])
    torch.manual_seed(0)
    model = StructVRNN(cfg).set_precision("fp32")
    images = moving_dots(3, cfg.num_steps, seed=2)
    actions = torch.randn(3, cfg.num_steps, 2) if cfg.action_size else None
    out, grads = _training_pass(model, images, actions, SCHEDULES[schedule])
    model.dynamics.forward = types.MethodType(reference_forward, model.dynamics)  # type: ignore[method-assign]
    ref, ref_grads = _training_pass(model, images, actions, SCHEDULES[schedule])
    assert out.terms.keys() == ref.terms.keys()
    for name in out.terms:
        assert torch.equal(out.terms[name], ref.terms[name]), name
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        assert torch.equal(grads[name], ref_grads[name]), name
    for name in ("decoded_keypoints", "hidden", "latent", "best_index", "kl"):
        mine, theirs = getattr(out, name), getattr(ref, name)
        assert (mine is None) == (theirs is None), name
        assert mine is None or torch.equal(mine, theirs), name


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("feed_observed", [False, True])
def test_observe_equals_the_reference_bitwise(
    tiny_config: Callable, variant: str, feed_observed: bool
) -> None:
    """``StructVRNN.observe``'s call: one sample, no selection, every step observed."""
    cfg = tiny_config(**VARIANTS[variant])
    torch.manual_seed(0)
    dyn = KeypointDynamics(cfg)
    x = torch.rand(3, 5, cfg.feature_size) * 2 - 1
    actions = torch.randn(3, 5, 2) if cfg.action_size else None
    kwargs = dict(p_own_observed=0.0 if feed_observed else 1.0, num_samples=1, select_best=False)
    with torch.no_grad():
        torch.manual_seed(4)
        mine = dyn(x, actions, 5, **kwargs)
        torch.manual_seed(4)
        theirs = reference_forward(dyn, x, actions, 5, **kwargs)
    for name, value in vars(mine).items():
        other = getattr(theirs, name)
        assert (value is None) == (other is None), name
        assert value is None or torch.equal(value, other), name
