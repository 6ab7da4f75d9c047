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

import torch
from torch import Tensor, nn

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.dynamics_nets import (
    Belief,
    GaussianHead,
    KeypointDecoder,
    draw,
    select_best_sample,
)
from keypoint_wm.model.losses import kl_normal
from keypoint_wm.model.outputs import (
    DynamicsOutput,
    ScheduleValue,
    StepOutput,
    is_full,
    is_off,
)

__all__ = [
    "Belief",
    "DynamicsOutput",
    "GaussianHead",
    "KeypointDecoder",
    "KeypointDynamics",
    "StepOutput",
    "select_best_sample",
]


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
        target: Tensor | None = None,
    ) -> StepOutput:
        """Infer frame t from its detected keypoints WITHOUT advancing the GRU.

        For an online agent that must see the state of frame t before choosing the action
        that produces frame t+1: call this, choose the action, then
        ``advance(hidden, out.feed, out.latent, action)``. ``next_hidden`` is None. The
        training pass (:meth:`forward`) runs it for every observed step.

        Args:
            hidden: ``[B, H]`` h_{t-1}.
            observed: ``[B, D]`` detected keypoints of frame t (flat).
            feed_observed: Set ``feed`` to the detected keypoints instead of the decoded
                posterior sample (the latter is the authors' inference behaviour;
                Struct-RNN always feeds the detected keypoints).
            noise: standard-normal noise of the sample ``z = mean + std * noise``: ``[B, Z]``,
                or ``[N, B, Z]`` for N samples of which one is kept (see ``target``); default
                one ``[B, Z]`` drawn with ``torch.randn_like``, the global generator.
            sample: False: z is the posterior mean (``noise`` is not used).
            with_prior: False: skip the prior and the KL (``prior`` and ``kl`` are None), for
                a filter that needs neither.
            target: ``[B, D]`` with N samples: keep the one whose decoded keypoints are
                nearest (best of many); None keeps the first.

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
            prior = self.prior(hidden) if with_prior else None
            post = self.posterior(torch.cat([hidden, observed], dim=-1))
            kl = None if prior is None else kl_normal(post.mean, post.std, prior.mean, prior.std)
            z, decoded, index = self._decode(hidden, post, noise, sample, target)
            feed = observed if feed_observed else decoded
            return StepOutput(decoded, z, prior, post, kl, feed, None, index)

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
        return self._then_advance(step, hidden, action_next)

    def prior_step(
        self,
        hidden: Tensor,
        *,
        noise: Tensor | None = None,
        sample: bool = True,
        target: Tensor | None = None,
        prior_gradient: bool = True,
    ) -> StepOutput:
        """Predict frame t from ``hidden`` = h_{t-1} (one prior sample) WITHOUT advancing.

        The prior's twin of :meth:`posterior_step`: for an agent that imagines frame t and
        only then chooses the action that produces frame t+1, and for the predicted steps
        of :meth:`forward`. ``feed`` is the decoded keypoints; ``next_hidden`` is None.

        Args:
            hidden: ``[B, H]`` h_{t-1}.
            noise: ``[B, Z]`` or ``[N, B, Z]`` standard-normal noise of
                ``z = mean + std * noise``, as in :meth:`posterior_step`.
            sample: False: z is the prior mean.
            target: ``[B, D]``: with N samples, keep the one nearest (else the first).
            prior_gradient: False: z is drawn from the gradient-stopped prior (the authors'
                predicted steps, ``ModelConfig.future_loss_trains_prior=False``); ``prior``
                keeps its gradient.
        """
        with _fp32(hidden.device.type):
            if not self.stochastic:
                decoded = self.decoder(hidden)
                return StepOutput(decoded, None, None, None, None, decoded, None)
            assert self.prior is not None
            prior = self.prior(hidden)
            belief = prior if prior_gradient else Belief(prior.mean.detach(), prior.std.detach())
            z, decoded, index = self._decode(hidden, belief, noise, sample, target)
            return StepOutput(decoded, z, prior, None, None, decoded, None, index)

    def _decode(
        self,
        hidden: Tensor,
        belief: Belief,
        noise: Tensor | None,
        sample: bool,
        target: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Draw z from ``belief`` and decode it: ``(z [B, Z], decoded [B, D], index)``.

        With ``noise [N, B, Z]`` all N samples are decoded and one is kept: the nearest to
        ``target [B, D]`` (best of many), else the first; ``index [B]`` says which (None for
        one sample).
        """
        z = draw(belief, noise, sample)
        decoded = self.decoder(hidden, z)
        if z.dim() == hidden.dim():
            return z, decoded, None
        if target is not None and z.shape[0] > 1:
            index, decoded, z = select_best_sample(decoded, target, z)
            return z, decoded, index
        index = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
        return z[0], decoded[0], index

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
        return self._then_advance(step, hidden, action_next)

    def _then_advance(
        self, step: StepOutput, hidden: Tensor, action_next: Tensor | None
    ) -> StepOutput:
        """Set ``step.next_hidden``: :meth:`advance` from ``hidden`` with the step's feed and
        latent (in fp32), the second half of :meth:`observe_step` and :meth:`imagine_step`."""
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

        The online steps in a loop: :meth:`posterior_step` for observed steps,
        :meth:`prior_step` for predicted ones, then :meth:`advance` with the scheduled
        sampling's choice of keypoints.

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
        noise_shape = (
            (samples, batch, self.latent_size) if samples > 1 else (batch, self.latent_size)
        )
        train_prior = self.config.future_loss_trains_prior
        device = keypoints.device
        trace = _Trace()
        p_own: ScheduleValue
        with torch.autocast(device_type=device.type, enabled=False):
            keypoints = keypoints.float()
            h = self.initial_state(batch, device)
            for t in range(steps):
                target = keypoints[:, t]
                noise = torch.randn(noise_shape, device=device) if self.stochastic else None
                best_of = target if select_best else None
                if t < num_observed:
                    step = self.posterior_step(h, target, noise=noise, target=best_of)
                    p_own = p_own_observed if self.stochastic else 0.0
                else:
                    step = self.prior_step(
                        h, noise=noise, target=best_of, prior_gradient=train_prior
                    )
                    p_own = p_own_predicted
                feed = _scheduled_sample(target, step.decoded, p_own)
                trace.record(h, step, feed, t < num_observed)
                if t + 1 < steps:
                    action_next = None if actions is None else actions[:, t + 1]
                    h = self.advance(h, feed, step.latent, action_next)
        return trace.output()

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


class _Trace:
    """The per-step outputs of :meth:`KeypointDynamics.forward`, stacked over time at the end."""

    def __init__(self) -> None:
        names = ("decoded", "kl", "index", "hidden", "latent", "feed", "pm", "ps", "qm", "qs")
        self.lists: dict[str, list[Tensor]] = {name: [] for name in names}

    def record(self, hidden: Tensor, step: StepOutput, feed: Tensor, observed: bool) -> None:
        """Step t: ``hidden`` h_{t-1} ``[B, H]``, its :class:`StepOutput`, the ``feed``
        ``[B, D]`` the GRU gets; ``observed``: a posterior step."""
        out = self.lists
        out["hidden"].append(hidden)
        batch, device = hidden.shape[0], hidden.device
        index = step.best_index
        if index is None:
            index = torch.zeros(batch, dtype=torch.long, device=device)
        if step.prior is not None:
            out["pm"].append(step.prior.mean)
            out["ps"].append(step.prior.std)
        if step.posterior is not None:
            out["qm"].append(step.posterior.mean)
            out["qs"].append(step.posterior.std)
        if observed:
            out["kl"].append(torch.zeros(batch, device=device) if step.kl is None else step.kl)
        if step.latent is not None:
            out["latent"].append(step.latent)
        out["decoded"].append(step.decoded)
        out["index"].append(index)
        out["feed"].append(feed)

    def _stack(self, name: str) -> Tensor | None:
        values = self.lists[name]
        return torch.stack(values, dim=1) if values else None

    def output(self) -> DynamicsOutput:
        """:class:`DynamicsOutput` of the recorded steps."""
        decoded, kl, index = self._stack("decoded"), self._stack("kl"), self._stack("index")
        hidden, feed = self._stack("hidden"), self._stack("feed")
        assert decoded is not None and kl is not None and index is not None
        assert hidden is not None and feed is not None
        return DynamicsOutput(
            decoded=decoded,
            kl=kl,
            best_index=index,
            hidden=hidden,
            latent=self._stack("latent"),
            feed=feed,
            prior_mean=self._stack("pm"),
            prior_std=self._stack("ps"),
            posterior_mean=self._stack("qm"),
            posterior_std=self._stack("qs"),
        )


def _fp32(device_type: str) -> contextlib.AbstractContextManager[object]:
    """Autocast off for an online step; no context at all where it is already off (entering
    ``torch.autocast`` costs about 9 us, a step of a batch-1 filter about 150 us)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _scheduled_sample(target: Tensor, own: Tensor, p_own: ScheduleValue) -> Tensor:
    """Per batch element, ``own`` with probability ``p_own``, else ``target`` ``[B, D]``.

    A float 0 or 1 draws no random numbers; a tensor ``p_own`` always draws (no host sync)."""
    if is_off(p_own):
        return target
    if is_full(p_own):
        return own
    use_own = torch.rand(target.shape[0], 1, device=target.device) < p_own
    return torch.where(use_own, own, target)
