"""Keypoint dynamics: the VRNN of paper section 3.2 / S1.1.2, and the Struct-RNN baseline.

Per step t, with ``h = h_{t-1}`` (zeros before the first frame) and D = K * 3:

* prior: ``mean, std = prior(h)`` (MLP ``prior_net_size``, ReLU; std = softplus + 1e-4);
* posterior (observed steps): ``mean, std = posterior([h, x_t])`` (``posterior_net_size``);
* decoder: ``x_hat = tanh(MLP([h, z]))`` (``decoder_net_size``), ``[..., D]`` in [-1, 1];
* recurrence: ``h_t = GRU([x_in_t, z_t, action[t+1]], h_{t-1})`` where x_in_t is the detected
  keypoints (teacher forcing) or the model's own decoded sample (scheduled sampling), and
  ``action[t+1]`` is the action that produces frame t+1 (docs/design.md,
  "Action conditioning"), so ``prior(h_t)``, the belief about frame t+1, sees it.

Best-of-many (paper eq. 8; authors' ``SampleBestBelief``): in training, N reparameterised
samples of z are drawn from the posterior (observed steps) or the prior (predicted steps) and
each is decoded; the sample whose decoded keypoints have the smallest mean squared error to
the detected keypoints of that frame is selected (in predicted steps too: the target is the
detected keypoints of the future frame). Only the selected sample reaches the loss, so only
it gets gradient, and -- as in the authors' code -- the selected z and the selected decoded
keypoints are what the recurrence continues with. Without a target (rollouts) the first
sample is used, as the authors do at inference.

As in the authors' code, in predicted steps the prior's mean and std are gradient-stopped
(``ModelConfig.future_loss_trains_prior=False``): the prior net learns only from the KL.

Struct-RNN (``dynamics="rnn"``): no latent, no KL, no sampling. ``x_hat_t = decoder(h)``
is a prediction of frame t from the past; the GRU input is ``[x_in_t, action[t+1]]``, where
x_in_t is always the detected keypoints in observed steps (a deterministic RNN has no other
way to see the observation) and the scheduled-sampling choice in predicted steps.

All computation is float32 and runs with autocast disabled.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.image_nets import he_uniform_
from keypoint_wm.model.losses import kl_normal
from keypoint_wm.model.outputs import ScheduleValue, is_full, is_off

STD_EPSILON = 1e-4


class Belief(NamedTuple):
    """A diagonal Gaussian over z: ``mean`` and ``std`` ``[B, Z]`` (std > 0)."""

    mean: Tensor
    std: Tensor


@dataclass
class StepOutput:
    """One online step of the dynamics model.

    Attributes:
        decoded: ``[B, D]`` decoded keypoints (flat K * 3, tanh range [-1, 1]).
        latent: ``[B, Z]`` the z used (None for Struct-RNN).
        prior: Prior belief for this frame (None for Struct-RNN).
        posterior: Posterior belief (observe steps of the VRNN only).
        kl: ``[B]`` KL(posterior || prior) summed over Z (observe steps of the VRNN only).
        feed: ``[B, D]`` the keypoints fed to the GRU.
        next_hidden: ``[B, H]`` the state after the GRU update, conditioning frame t+1
            (None from :meth:`KeypointDynamics.posterior_step`).
    """

    decoded: Tensor
    latent: Tensor | None
    prior: Belief | None
    posterior: Belief | None
    kl: Tensor | None
    feed: Tensor
    next_hidden: Tensor | None


@dataclass
class DynamicsOutput:
    """Full-sequence output of :meth:`KeypointDynamics.forward`.

    Attributes:
        decoded: ``[B, T, D]`` decoded keypoints of the selected sample.
        kl: ``[B, T0]`` KL per observed step, summed over Z (zeros for Struct-RNN).
        best_index: ``[B, T]`` index of the selected best-of-many sample (zeros without
            BoM).
        hidden: ``[B, T, H]``: ``hidden[:, t]`` is h_{t-1}, the state that conditions the
            prior, posterior and decoder of frame t (summarises frames < t and actions up
            to ``action[t]``); ``hidden[:, 0]`` is the zero initial state.
        latent: ``[B, T, Z]`` selected z (None for Struct-RNN).
        feed: ``[B, T, D]`` keypoints fed to the GRU after each frame.
        prior_mean, prior_std: ``[B, T, Z]`` (None for Struct-RNN).
        posterior_mean, posterior_std: ``[B, T0, Z]`` (None for Struct-RNN).
    """

    decoded: Tensor
    kl: Tensor
    best_index: Tensor
    hidden: Tensor
    latent: Tensor | None
    feed: Tensor
    prior_mean: Tensor | None
    prior_std: Tensor | None
    posterior_mean: Tensor | None
    posterior_std: Tensor | None


def _dense(in_features: int, out_features: int, he: bool, bias: bool = True) -> nn.Linear:
    """Dense layer with Keras init: He-uniform (hidden, ReLU) or Glorot-uniform (heads)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    if he:
        he_uniform_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class GaussianHead(nn.Module):
    """MLP ``[.., in] -> (mean, std)`` ``[.., Z]``: Dense(units, ReLU), two Dense heads."""

    def __init__(self, in_features: int, units: int, latent_size: int) -> None:
        super().__init__()
        self.hidden = _dense(in_features, units, he=True)
        self.mean = _dense(units, latent_size, he=False)
        self.std = _dense(units, latent_size, he=False)

    def forward(self, x: Tensor) -> Belief:
        a = F.relu(self.hidden(x))
        return Belief(self.mean(a), F.softplus(self.std(a)) + STD_EPSILON)


class KeypointDecoder(nn.Module):
    """``tanh(Dense(ReLU(Dense([h, z]))))`` to ``[.., D]``.

    The first layer is split into an h part and a z part (the same function as a Dense on
    the concatenation, He-uniform with fan_in = H + Z) so that N best-of-many samples
    ``z [N, B, Z]`` share one ``h [B, H]`` product.
    """

    def __init__(self, hidden_size: int, latent_size: int, units: int, out_size: int) -> None:
        super().__init__()
        fan_in = hidden_size + latent_size
        self.from_h = nn.Linear(hidden_size, units)
        he_uniform_(self.from_h.weight, fan_in)
        nn.init.zeros_(self.from_h.bias)
        self.from_z: nn.Linear | None = None
        if latent_size:
            self.from_z = nn.Linear(latent_size, units, bias=False)
            he_uniform_(self.from_z.weight, fan_in)
        self.out = _dense(units, out_size, he=False)

    def forward(self, h: Tensor, z: Tensor | None = None) -> Tensor:
        """``h [B, H]``, ``z [B, Z]`` or ``[N, B, Z]`` -> ``[B, D]`` or ``[N, B, D]``."""
        a = self.from_h(h)
        if z is not None and self.from_z is not None:
            a = a + self.from_z(z)
        return torch.tanh(self.out(F.relu(a)))


def select_best_sample(samples: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Best-of-many selection.

    Args:
        samples: ``[N, B, D]`` decoded samples.
        target: ``[B, D]`` detected keypoints.

    Returns:
        ``(index [B], chosen [B, D])``: the sample with the smallest mean squared error to
        the target (over D, including the scale channel), gathered so that only it is in
        the graph.
    """
    errors = (samples - target.unsqueeze(0)).pow(2).mean(dim=-1)  # [N, B]
    index = errors.argmin(dim=0)
    chosen = samples[index, torch.arange(samples.shape[1], device=samples.device)]
    return index, chosen


class KeypointDynamics(nn.Module):
    """VRNN (or deterministic RNN) over flat keypoint vectors ``[B, D]``, D = K * 3."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stochastic = config.dynamics == "vrnn"
        d, h = config.feature_size, config.rnn_units
        z = config.latent_size if self.stochastic else 0
        self.input_size, self.hidden_size, self.latent_size = d, h, z
        self.action_size = config.action_size
        self.rnn = nn.GRUCell(d + z + config.action_size, h)
        nn.init.xavier_uniform_(self.rnn.weight_ih)
        nn.init.orthogonal_(self.rnn.weight_hh)
        nn.init.zeros_(self.rnn.bias_ih)
        nn.init.zeros_(self.rnn.bias_hh)
        self.prior: GaussianHead | None = None
        self.posterior: GaussianHead | None = None
        if self.stochastic:
            self.prior = GaussianHead(h, config.prior_net_size, z)
            self.posterior = GaussianHead(h + d, config.posterior_net_size, z)
        self.decoder = KeypointDecoder(h, z, config.decoder_net_size, d)

    # ----------------------------------------------------------------- online API
    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        """Zero state h_{-1}, ``[B, H]``."""
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def advance(
        self, hidden: Tensor, feed: Tensor, latent: Tensor | None, action_next: Tensor | None
    ) -> Tensor:
        """GRU update ``h_t = GRU([feed, z_t, action[t+1]], h_{t-1})`` -> ``[B, H]``."""
        inputs = [feed]
        if self.stochastic:
            if latent is None:
                raise ValueError("the VRNN needs the latent z_t to advance")
            inputs.append(latent)
        if self.action_size:
            if action_next is None:
                raise ValueError(
                    f"this model is action-conditioned (action_size={self.action_size}); "
                    "pass the action that produces the next frame"
                )
            inputs.append(action_next.float())
        return self.rnn(torch.cat(inputs, dim=-1), hidden)

    def posterior_step(
        self,
        hidden: Tensor,
        observed: Tensor,
        feed_observed: bool = False,
        *,
        noise: Tensor | None = None,
        sample: bool = True,
        with_prior: bool = True,
    ) -> StepOutput:
        """Infer frame t from its detected keypoints WITHOUT advancing the GRU.

        For an online agent that must see the state of frame t before choosing the action
        that produces frame t+1: call this, choose the action, then
        ``advance(hidden, out.feed, out.latent, action)``. ``next_hidden`` is None.

        Args:
            hidden: ``[B, H]`` h_{t-1}.
            observed: ``[B, D]`` detected keypoints of frame t (flat).
            feed_observed: Set ``feed`` to the detected keypoints instead of the decoded
                posterior sample (the latter is the authors' inference behaviour;
                Struct-RNN always feeds the detected keypoints).
            noise: ``[B, Z]`` standard-normal noise of the sample ``z = mean + std * noise``
                (default: drawn with ``torch.randn_like``, the global generator).
            sample: False: z is the posterior mean (``noise`` is not used).
            with_prior: False: skip the prior and the KL (``prior`` and ``kl`` are None), for
                a filter that needs neither.

        Returns:
            :class:`StepOutput` with one posterior sample (Struct-RNN: ``decoded`` is the
            prediction from h_{t-1}).
        """
        with _fp32(hidden.device.type):
            observed = observed.float()
            if not self.stochastic:
                decoded = self.decoder(hidden)
                return StepOutput(decoded, None, None, None, None, observed, None)
            assert self.prior is not None and self.posterior is not None
            post = self.posterior(torch.cat([hidden, observed], dim=-1))
            z = _draw(post, noise, sample)
            decoded = self.decoder(hidden, z)
            feed = observed if feed_observed else decoded
            if not with_prior:
                return StepOutput(decoded, z, None, post, None, feed, None)
            prior = self.prior(hidden)
            kl = kl_normal(post.mean, post.std, prior.mean, prior.std)
            return StepOutput(decoded, z, prior, post, kl, feed, None)

    def observe_step(
        self,
        hidden: Tensor,
        observed: Tensor,
        action_next: Tensor | None = None,
        feed_observed: bool = False,
    ) -> StepOutput:
        """:meth:`posterior_step` then :meth:`advance` with ``action_next``.

        Args:
            hidden: ``[B, H]`` h_{t-1}.
            observed: ``[B, D]`` detected keypoints of frame t (flat).
            action_next: ``[B, A]`` the action that produces frame t+1 (required when
                action-conditioned).
            feed_observed: See :meth:`posterior_step`.

        Returns:
            :class:`StepOutput` with ``next_hidden`` = h_t ``[B, H]``.
        """
        step = self.posterior_step(hidden, observed, feed_observed)
        with _fp32(hidden.device.type):
            step.next_hidden = self.advance(hidden, step.feed, step.latent, action_next)
        return step

    def prior_step(
        self, hidden: Tensor, *, noise: Tensor | None = None, sample: bool = True
    ) -> StepOutput:
        """Predict frame t from ``hidden`` = h_{t-1} (one prior sample) WITHOUT advancing.

        The prior's twin of :meth:`posterior_step`: for an agent that imagines frame t and
        only then chooses the action that produces frame t+1. ``feed`` is the decoded
        keypoints; ``next_hidden`` is None.

        Args:
            hidden: ``[B, H]`` h_{t-1}.
            noise: ``[B, Z]`` standard-normal noise of ``z = mean + std * noise`` (default:
                drawn with ``torch.randn_like``).
            sample: False: z is the prior mean.
        """
        with _fp32(hidden.device.type):
            if not self.stochastic:
                decoded = self.decoder(hidden)
                return StepOutput(decoded, None, None, None, None, decoded, None)
            assert self.prior is not None
            prior = self.prior(hidden)
            z = _draw(prior, noise, sample)
            decoded = self.decoder(hidden, z)
            return StepOutput(decoded, z, prior, None, None, decoded, None)

    def imagine_step(
        self,
        hidden: Tensor,
        action_next: Tensor | None = None,
        *,
        noise: Tensor | None = None,
        sample: bool = True,
    ) -> StepOutput:
        """:meth:`prior_step` (predict frame t from ``hidden`` = h_{t-1}) then :meth:`advance`.

        The decoded keypoints are fed back to the GRU with ``action_next``. For several
        futures, repeat the batch (see :meth:`StructVRNN.rollout`).
        """
        step = self.prior_step(hidden, noise=noise, sample=sample)
        with _fp32(hidden.device.type):
            step.next_hidden = self.advance(hidden, step.feed, step.latent, action_next)
        return step

    # ----------------------------------------------------------------- training
    def forward(
        self,
        keypoints: Tensor,
        actions: Tensor | None,
        num_observed: int,
        p_own_observed: ScheduleValue = 0.0,
        p_own_predicted: ScheduleValue = 0.0,
        num_samples: int | None = None,
        select_best: bool = True,
    ) -> DynamicsOutput:
        """Run the dynamics over a whole sequence (training and ``observe``).

        Args:
            keypoints: ``[B, T, D]`` detected keypoints (the caller detaches them). They are
                the posterior's input in observed steps and the best-of-many / teacher
                forcing target in all steps.
            actions: ``[B, T, A]`` with ``actions[:, t]`` the action that led to frame t, or
                None for an action-free model. The GRU update after frame t uses
                ``actions[:, t + 1]``; ``actions[:, 0]`` is never used.
            num_observed: T0: steps 0..T0-1 use the posterior, the rest the prior.
            p_own_observed: Probability, per (batch element, step), of feeding the model's
                own decoded sample rather than the detected keypoints to the GRU in
                observed steps (ignored by Struct-RNN).
            p_own_predicted: Same for predicted steps.
            num_samples: Latent samples per step (default ``config.num_samples``).
            select_best: Select the best-of-many sample against ``keypoints``; if False the
                first sample is used.

        Returns:
            :class:`DynamicsOutput`.
        """
        batch, steps, _ = keypoints.shape
        if not 0 < num_observed <= steps:
            raise ValueError(f"num_observed must be in [1, T={steps}], got {num_observed}")
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
                        belief = Belief(prior.mean.detach(), prior.std.detach())
                    noise = torch.randn(samples, batch, self.latent_size, device=device)
                    z = belief.mean + belief.std * noise  # [N, B, Z]
                    decoded_all = self.decoder(h, z)  # [N, B, D]
                    if samples > 1 and select_best:
                        index, decoded = select_best_sample(decoded_all, target)
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
                feed = _scheduled_sample(target, decoded, p_own)
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

    def _check_actions(self, actions: Tensor | None, batch: int, steps: int) -> Tensor | None:
        if self.action_size == 0:
            if actions is not None and actions.numel() > 0 and actions.shape[-1] > 0:
                raise ValueError("actions given to a model with action_size=0")
            return None
        if actions is None:
            raise ValueError(f"this model needs actions [B, T, {self.action_size}]")
        if tuple(actions.shape) != (batch, steps, self.action_size):
            raise ValueError(
                f"actions must be [B={batch}, T={steps}, A={self.action_size}], "
                f"got {tuple(actions.shape)}"
            )
        return actions.float()


def _fp32(device_type: str) -> contextlib.AbstractContextManager[object]:
    """Autocast off for an online step; no context at all where it is already off (entering
    ``torch.autocast`` costs about 9 us, a step of a batch-1 filter about 150 us)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _draw(belief: Belief, noise: Tensor | None, sample: bool) -> Tensor:
    """One z from ``belief``: ``mean + std * noise`` (noise drawn when None), or the mean."""
    if not sample:
        return belief.mean
    if noise is None:
        noise = torch.randn_like(belief.std)
    return belief.mean + belief.std * noise


def _scheduled_sample(target: Tensor, own: Tensor, p_own: ScheduleValue) -> Tensor:
    """Per batch element, ``own`` with probability ``p_own``, else ``target`` ``[B, D]``.

    A float 0 or 1 draws no random numbers; a tensor ``p_own`` always draws (no host sync)."""
    if is_off(p_own):
        return target
    if is_full(p_own):
        return own
    use_own = torch.rand(target.shape[0], 1, device=target.device) < p_own
    return torch.where(use_own, own, target)
