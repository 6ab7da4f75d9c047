"""The CUDA path: devices, the graphed step, device-resident data, resume and loading on a
GPU. Every test here needs a CUDA device and is skipped without one (``-m cuda`` selects
them; ``keypoint-wm reproduce gpu-check`` runs them on a GPU)."""

from __future__ import annotations

import pytest
import torch
from kwm_testing import tiny_config

from keypoint_wm.model import ModelConfig, StructVRNN
from keypoint_wm.model.device import resolve_device
from keypoint_wm.model.outputs import LossSchedule
from keypoint_wm.train import train
from keypoint_wm.train_step import NonFiniteLossError, StepRunner

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def small_model(dynamics: str = "vrnn") -> StructVRNN:
    config = ModelConfig(image_size=32, num_keypoints=4, num_encoder_filters=8,
                         heatmap_width=8, num_observed_steps=3, num_predicted_steps=2,
                         rnn_units=16, latent_size=4, prior_net_size=16,
                         posterior_net_size=16, decoder_net_size=16, num_bom_samples=4,
                         dynamics=dynamics)  # fmt: skip
    torch.manual_seed(0)
    return StructVRNN(config).cuda()


def test_cuda_without_an_index_is_cuda_0():
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device(None).type == "cuda"


def run_steps(runner: StepRunner, schedules: list[LossSchedule]) -> list[dict[str, float]]:
    generator = torch.Generator().manual_seed(1)
    terms = []
    for schedule in schedules:
        frames = torch.randint(0, 256, (4, 5, 32, 32, 3), generator=generator, dtype=torch.uint8)
        runner.step(frames.cuda(), None, None, schedule, lr=1e-3)
        terms.append(runner.read_terms())
    return terms


def test_graphed_step_computes_what_the_eager_step_computes():
    # Struct-RNN draws no random numbers, so graphed and eager steps see the same inputs.
    schedules = [LossSchedule(kl_scale=0.1 * i, p_own_sample_observed=0.0,
                              p_own_sample_predicted=1.0 if i > 5 else 0.0,
                              keypoint_width=1.5 + 0.1 * i) for i in range(9)]  # fmt: skip
    eager = run_steps(StepRunner(small_model("rnn"), 1e-3, 10.0), schedules)
    graphed_runner = StepRunner(small_model("rnn"), 1e-3, 10.0, use_graph=True)
    graphed = run_steps(graphed_runner, schedules)
    assert graphed_runner.use_graph and graphed_runner.captures == 2  # a key change recaptures
    # Identical up to floating-point order: kernels may differ between eager and captured
    # runs (cuDNN's choice, atomics), so the trajectories drift apart slowly.
    for step, (a, b) in enumerate(zip(eager, graphed, strict=True)):
        for name in a:
            assert b[name] == pytest.approx(a[name], rel=1e-2, abs=1e-4), (step, name)


def test_graphed_vrnn_draws_new_noise_every_replay_and_learns():
    runner = StepRunner(small_model(), 3e-3, 10.0, use_graph=True)
    frames = torch.randint(0, 256, (4, 5, 32, 32, 3), dtype=torch.uint8).cuda()
    schedule = LossSchedule(0.5, 0.5, 0.5)
    losses, kls = [], []
    for _ in range(30):
        runner.step(frames, None, None, schedule, lr=3e-3)
        terms = runner.read_terms()
        losses.append(terms["total"])
        kls.append(terms["kl"])
    assert runner.use_graph and runner.captures == 1
    runner.raise_if_nonfinite(30)
    assert losses[-1] < losses[0]
    assert len(set(kls[-5:])) == 5  # fresh samples each replay, not a frozen draw
    # With learning rate 0 the weights stay put: only fresh noise can still change the terms.
    frozen = []
    for _ in range(3):
        runner.step(frames, None, None, schedule, lr=0.0)
        frozen.append(runner.read_terms()["kp_future"])
    assert runner.captures == 1 and len(set(frozen)) == 3


def test_graphed_step_reports_a_non_finite_loss():
    model = small_model()
    model.config = model.config.replace(image_loss_scale=float("inf"))
    runner = StepRunner(model, 1e-3, 10.0, use_graph=True)
    frames = torch.randint(0, 256, (4, 5, 32, 32, 3), dtype=torch.uint8).cuda()
    for _ in range(6):
        runner.step(frames, None, None, LossSchedule(0.1, 0.5, 0.5), lr=1e-3)
    with pytest.raises(NonFiniteLossError, match="image"):
        runner.raise_if_nonfinite(6)


@pytest.mark.integration
@pytest.mark.parametrize("device_name", ["cuda", "cuda:0", None])
def test_train_resume_and_load_on_cuda(basketball_dir, tmp_path, device_name):
    import keypoint_wm

    run = tmp_path / "run"
    result = train(tiny_config(6), basketball_dir, run, device_name=device_name, progress=False)
    assert result["cuda_graph"] and result["data_on_device"]
    resumed = train(tiny_config(9), basketball_dir, run, resume=True, device_name=device_name,
                    progress=False)  # fmt: skip
    assert resumed["step"] == 9
    model = keypoint_wm.load(run, device=device_name)
    assert model.device.type == "cuda"
    frames = torch.randint(0, 256, (1, 6, 32, 32, 3), dtype=torch.uint8)
    assert model.observe(frames.numpy()).keypoints.shape[:2] == (1, 6)


@pytest.mark.integration
def test_eager_and_loader_paths_still_work_on_cuda(basketball_dir, tmp_path):
    result = train(tiny_config(4), basketball_dir, tmp_path / "run", device_name="cuda",
                   progress=False, data_placement="loader", cuda_graph="off")  # fmt: skip
    assert not result["cuda_graph"] and not result["data_on_device"]
