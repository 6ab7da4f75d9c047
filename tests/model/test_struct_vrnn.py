from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch

from keypoint_wm.model import (
    PRECISIONS,
    TERM_NAMES,
    LossSchedule,
    StructVRNN,
    bf16_is_fast,
    preferred_precision,
)


def test_forward_shapes_and_terms(tiny_config: Callable, moving_dots: Callable) -> None:
    cfg = tiny_config(action_size=2, separation_loss_scale=0.2, sparsity_loss_scale=0.3)
    model = StructVRNN(cfg)
    images = moving_dots(2, 6)
    actions = torch.randn(2, 6, 2)
    torch.manual_seed(1)
    out = model(images, actions, LossSchedule(0.01, 0.5, 0.5))
    assert out.keypoints.shape == (2, 6, 4, 3)
    assert out.heatmaps is not None and out.heatmaps.shape == (2, 6, 4, 16, 16)
    assert out.decoded_keypoints.shape == (2, 6, 4, 3)
    assert out.reconstruction.shape == images.shape
    assert out.hidden.shape == (2, 6, cfg.rnn_units)
    assert out.kl.shape == (2, 3) and out.best_index.shape == (2, 6)
    assert set(out.terms) == {*TERM_NAMES, "total"}
    assert all(v.dim() == 0 and v.dtype == torch.float32 for v in out.terms.values())
    # Each term's weight comes from the config or the schedule (the module's table).
    assert out.weights == {
        "image": cfg.image_loss_scale,
        "separation": 0.2,
        "overlap": 0.0,
        "concentration": 0.0,
        "motion": 0.0,
        "sparsity": 0.3,
        "kp_observed": 1.0,
        "kl": 0.01,
        "kp_future": 1.0,
        "weight_decay": cfg.weight_decay,
    }
    # The annealed KL weight enters the objective linearly: the same batch and noise at a
    # larger KL weight raise the loss by exactly the extra weight times the KL term.
    torch.manual_seed(1)
    annealed = model(images, actions, LossSchedule(0.5, 0.5, 0.5))
    assert annealed.terms["kl"].item() == pytest.approx(out.terms["kl"].item(), rel=1e-6)
    assert out.terms["kl"].item() > 0
    assert (annealed.loss - out.loss).item() == pytest.approx(
        0.49 * out.terms["kl"].item(), rel=1e-4
    )
    kp = out.keypoints
    assert kp[..., :2].abs().max() <= 1.0 and kp[..., 2].min() >= 0 and kp[..., 2].max() <= 1.0


def test_image_parts_shapes(tiny_config: Callable) -> None:
    cfg = tiny_config(image_size=64, layers_per_scale=2)
    model = StructVRNN(cfg)
    images = torch.rand(1, 2, 3, 64, 64) - 0.5
    kp, maps = model.detect(images)
    assert kp.shape == (1, 2, 4, 3) and maps is not None and maps.shape == (1, 2, 4, 16, 16)
    assert model.appearance.out_channels == 8 * 4
    recon = model.reconstruct(images[:, 0], kp[:, 0], kp)
    assert recon.shape == images.shape
    with pytest.raises(ValueError):
        model.detect(torch.rand(1, 2, 3, 32, 32))


def test_reconstruction_adds_first_frame(tiny_config: Callable, moving_dots: Callable) -> None:
    model = StructVRNN(tiny_config())
    torch.nn.init.zeros_(model.reconstructor.to_image.weight)
    images = moving_dots(1, 3)
    kp, _ = model.detect(images)
    recon = model.reconstruct(images[:, 0], kp[:, 0], kp)
    torch.testing.assert_close(recon, images[:, :1].expand_as(recon))


def test_forward_reconstructs_on_a_given_reference_frame(
    tiny_config: Callable, moving_dots: Callable
) -> None:
    model = StructVRNN(tiny_config())
    torch.nn.init.zeros_(model.reconstructor.to_image.weight)
    torch.nn.init.zeros_(model.reconstructor.to_image.bias)
    images = moving_dots(2, 6)
    other = moving_dots(2, 1, seed=5)[:, 0]  # frames of other sequences
    default = model(images).reconstruction
    torch.testing.assert_close(default, images[:, :1].expand_as(default))
    given = model(images, reference=other).reconstruction
    torch.testing.assert_close(given, other[:, None].expand_as(given))


def _grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad for p in module.parameters() if p.grad is not None]


def test_detector_gets_no_gradient_from_dynamics_losses(
    tiny_config: Callable, moving_dots: Callable
) -> None:
    model = StructVRNN(tiny_config())
    out = model(moving_dots(2, 6), None, LossSchedule(1.0, 0.5, 0.5))
    (out.terms["kp_observed"] + out.terms["kl"] + out.terms["kp_future"]).backward()
    assert all(g.abs().sum() == 0 for g in _grads(model.detector))
    assert all(g.abs().sum() == 0 for g in _grads(model.reconstructor))
    assert any(g.abs().sum() > 0 for g in _grads(model.dynamics))

    model.zero_grad(set_to_none=True)
    out = model(moving_dots(2, 6), None, LossSchedule(1.0, 0.5, 0.5))
    out.terms["image"].backward()
    assert model.detector.to_heatmaps.weight.grad is not None
    assert model.detector.to_heatmaps.weight.grad.abs().sum() > 0
    assert all(g.abs().sum() == 0 for g in _grads(model.dynamics))


@pytest.mark.parametrize(
    "changes",
    [
        {"dynamics": "rnn"},
        {"use_bom": False},
        {"representation": "cnn"},
        {"representation": "cnn", "action_size": 3},
        {"scale_normalization": "none", "sparsity_target": "heatmap_mean"},
        {"heatmap_amplitude": "one", "separation_loss_steps": "all"},
    ],
)
def test_variants_run_and_backprop(
    changes: dict, tiny_config: Callable, moving_dots: Callable
) -> None:
    cfg = tiny_config(**changes)
    model = StructVRNN(cfg)
    images = moving_dots(2, 6)
    actions = torch.randn(2, 6, cfg.action_size) if cfg.action_size else None
    out = model(images, actions, LossSchedule(0.1, 0.5, 0.5))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert out.decoded_keypoints.shape == (2, 6, 4, 3)
    if cfg.dynamics == "rnn":
        assert out.terms["kl"].item() == 0.0 and out.latent is None
    if cfg.representation == "cnn":
        assert out.heatmaps is None
        assert out.terms["separation"].item() == 0.0
    if not cfg.use_bom:
        assert torch.all(out.best_index == 0)


def test_rollout_and_keypoint_edit(tiny_config: Callable, moving_dots: Callable) -> None:
    cfg = tiny_config(action_size=2)
    model = StructVRNN(cfg).eval()
    images = moving_dots(2, 3)
    actions = torch.randn(2, 3 + 4, 2)

    def shift_first_keypoint(kp: torch.Tensor) -> torch.Tensor:
        kp = kp.clone()
        kp[:, :, 0, 0] = 0.9
        return kp

    with torch.no_grad():
        out = model.rollout(images, actions, num_future=4, num_samples=5, decode_images=True)
        edited = model.rollout(images, actions, 4, 5, keypoint_edit=shift_first_keypoint)
    assert out.decoded_keypoints.shape == (2, 5, 7, 4, 3)
    assert out.hidden.shape == (2, 5, 7, cfg.rnn_units)
    assert out.images is not None and out.images.shape == (2, 5, 7, 3, 32, 32)
    assert out.observed_keypoints.shape == (2, 3, 4, 3)
    assert torch.all(edited.observed_keypoints[:, :, 0, 0] == 0.9)
    assert edited.images is None
    # samples differ (stochastic prior)
    assert not torch.allclose(out.decoded_keypoints[:, 0, -1], out.decoded_keypoints[:, 1, -1])
    with pytest.raises(ValueError):
        model.rollout(images, actions[:, :5], num_future=4)


def test_observe(tiny_config: Callable, moving_dots: Callable) -> None:
    cfg = tiny_config(action_size=2)
    model = StructVRNN(cfg)
    images = moving_dots(2, 5)
    actions = torch.randn(2, 5, 2)
    with torch.no_grad():
        out = model.observe(images, actions)
    assert out.keypoints.shape == (2, 5, 4, 3)
    assert out.hidden.shape == (2, 5, cfg.rnn_units)
    assert out.posterior_mean is not None and out.posterior_mean.shape == (2, 5, cfg.latent_size)
    assert out.latent is not None
    h = model.dynamics.advance(out.hidden[:, -1], out.feed[:, -1], out.latent[:, -1], actions[:, 0])
    assert h.shape == (2, cfg.rnn_units)


def test_loss_decreases_on_fixed_batch(tiny_config: Callable, moving_dots: Callable) -> None:
    torch.manual_seed(0)
    cfg = tiny_config(num_observed_steps=2, num_predicted_steps=2)
    model = StructVRNN(cfg)
    images = moving_dots(4, 4, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    values = []
    for _ in range(30):
        out = model(images, None, LossSchedule(0.01, 0.0, 0.0))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        values.append(out.loss.item())
    assert sum(values[-3:]) / 3 < 0.7 * sum(values[:3]) / 3, values


@pytest.mark.filterwarnings("ignore:bf16 autocast on a CPU")
def test_bf16_channels_last_close_to_fp32(tiny_config: Callable, moving_dots: Callable) -> None:
    cfg = tiny_config(image_size=64)
    model = StructVRNN(cfg)
    fast = copy.deepcopy(model).set_precision("bf16")
    images = moving_dots(2, 3, size=64)
    with torch.no_grad():
        kp32, _ = model.detect(images)
        kp16, maps16 = fast.detect(images)
        assert maps16 is not None and maps16.dtype == torch.float32
        assert kp16.dtype == torch.float32
        torch.testing.assert_close(kp16, kp32, atol=0.03, rtol=0)
        rec32 = model.reconstruct(images[:, 0], kp32[:, 0], kp32)
        rec16 = fast.reconstruct(images[:, 0], kp32[:, 0], kp32)
        assert rec16.dtype == torch.float32
        assert (rec16 - rec32).abs().mean() < 0.02
    out = fast(images, None, LossSchedule(0.01, 0.5, 0.5))
    assert out.decoded_keypoints.dtype == torch.float32 and out.hidden.dtype == torch.float32
    out.loss.backward()
    assert fast.detector.to_heatmaps.weight.grad is not None
    assert fast.detector.to_heatmaps.weight.grad.dtype == torch.float32
    # Caller-side autocast must not push the dynamics into bf16.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fast(images, None, LossSchedule(0.01, 0.5, 0.5))
    assert out.hidden.dtype == torch.float32 and out.loss.dtype == torch.float32


def test_channels_last_fp32_matches_and_precision_helpers(
    tiny_config: Callable, moving_dots: Callable
) -> None:
    model = StructVRNN(tiny_config())
    fast = copy.deepcopy(model).set_precision("channels_last")
    images = moving_dots(2, 3)
    with torch.no_grad():
        kp32, _ = model.detect(images)
        kp_cl, _ = fast.detect(images)
        torch.testing.assert_close(kp_cl, kp32, atol=1e-4, rtol=1e-4)
        rec32 = model.reconstruct(images[:, 0], kp32[:, 0], kp32)
        rec_cl = fast.reconstruct(images[:, 0], kp32[:, 0], kp32)
        torch.testing.assert_close(rec_cl, rec32, atol=1e-4, rtol=1e-4)
    assert preferred_precision("cpu") in PRECISIONS
    assert preferred_precision("cpu") == ("bf16" if bf16_is_fast("cpu") else "channels_last")
    with pytest.raises(ValueError, match="precision"):
        model.set_precision("fp16")
    # state dicts load across precisions
    model.load_state_dict(fast.state_dict())


def test_detector_without_coordinate_channels_is_translation_equivariant() -> None:
    from keypoint_wm.model.config import ModelConfig
    from keypoint_wm.model.image_nets import KeypointDetector

    torch.manual_seed(0)
    config = ModelConfig(image_size=32, heatmap_width=8, num_keypoints=3,
                         num_encoder_filters=4, detector_coord_channels=False)  # fmt: skip
    detector = KeypointDetector(config)
    assert detector.encoder.convs[0].in_channels == 3
    image = torch.zeros(1, 3, 32, 32)
    image[0, :, 8:12, 8:12] = torch.rand(3, 4, 4)
    shifted = torch.roll(image, shifts=(8, 8), dims=(2, 3))  # 2 heatmap cells down-right
    maps, maps_shifted = detector(image), detector(shifted)
    torch.testing.assert_close(maps_shifted[..., 3:6, 3:6], maps[..., 1:4, 1:4])


@pytest.mark.parametrize("prior", ["per_keypoint", "coverage"])
def test_discovery_terms_train_the_detector_only(
    tiny_config: Callable, moving_dots: Callable, prior: str
) -> None:
    cfg = tiny_config(concentration_loss_scale=2.0, motion_prior=prior)
    model = StructVRNN(cfg)
    out = model(moving_dots(2, 6), None, LossSchedule(0.01, 0.5, 0.5, motion_scale=3.0))
    assert out.terms["concentration"] > 0 and out.terms["motion"] > 0
    assert out.weights["concentration"] == 2.0 and out.weights["motion"] == 3.0
    (out.terms["concentration"] + out.terms["motion"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.detector.parameters())
    assert all(p.grad is None for p in model.dynamics.parameters())


def test_discovery_terms_are_skipped_at_weight_zero(
    tiny_config: Callable, moving_dots: Callable
) -> None:
    out = StructVRNN(tiny_config())(moving_dots(1, 6), None, LossSchedule(0.01, 0.5, 0.5))
    assert out.terms["concentration"] == 0 and out.terms["motion"] == 0
