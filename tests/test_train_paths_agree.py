"""The fast training paths compute what the plain path computes: data held on the device,
the host-sync-free step, and N seed replicas (docs/design.md, "Training speed", "Seeds")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from kwm_testing import tiny_config
from safetensors.torch import load_file

from keypoint_wm.checkpoint import latest_checkpoint
from keypoint_wm.data.device_windows import DeviceWindows
from keypoint_wm.data.sequences import EpisodeIndex, WindowDataset, make_loader
from keypoint_wm.errors import UsageError
from keypoint_wm.replicas import replica_dir, side_by_side, train_replicas
from keypoint_wm.train import train


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = weights(a), weights(b)
    assert left.keys() == right.keys()
    for name in left:
        torch.testing.assert_close(left[name], right[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("reference", ["first", "other_episode"])
def test_device_batches_equal_the_loaders_batches(basketball_dir, reference):
    index = EpisodeIndex(basketball_dir, "train", 0.2, min_frames=6)
    dataset = WindowDataset(index, 6, seed=5, action_size=2, reference=reference)
    windows = DeviceWindows(dataset, torch.device("cpu"))
    loader = iter(make_loader(dataset, batch_size=4, first_batch=3))
    for batch_number in (3, 4):
        expected = next(loader)
        got = windows.batch(batch_number * 4, 4)
        assert set(got) == set(expected)
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)


def test_device_batches_fill_preallocated_buffers(basketball_dir):
    index = EpisodeIndex(basketball_dir, "train", 0.2, min_frames=6)
    windows = DeviceWindows(WindowDataset(index, 6, seed=5), torch.device("cpu"))
    frames = torch.zeros((3, 6, 32, 32, 3), dtype=torch.uint8)
    batch = windows.batch(0, 3, out={"frames": frames})
    assert batch["image"].data_ptr() == frames.data_ptr()
    assert bool((frames == windows.batch(0, 3)["image"]).all())


@pytest.mark.integration
def test_training_from_device_data_is_bitwise_the_loaders(basketball_dir, tmp_path):
    torch.set_num_threads(1)
    config = tiny_config(3, **{"train.reference_frame": "other_episode"})
    loader = train(config, basketball_dir, tmp_path / "loader", progress=False,
                   data_placement="loader")  # fmt: skip
    device = train(config, basketball_dir, tmp_path / "device", progress=False,
                   data_placement="device")  # fmt: skip
    assert not loader["data_on_device"] and device["data_on_device"]
    assert_same_weights(tmp_path / "loader", tmp_path / "device")
    assert loader["losses"] == device["losses"]


@pytest.mark.integration
def test_resume_may_switch_the_data_path(basketball_dir, tmp_path):
    torch.set_num_threads(1)
    train(tiny_config(4), basketball_dir, tmp_path / "straight", progress=False)
    train(tiny_config(2), basketball_dir, tmp_path / "split", progress=False,
          data_placement="loader")  # fmt: skip
    train(tiny_config(4), basketball_dir, tmp_path / "split", resume=True, progress=False,
          data_placement="device")  # fmt: skip
    assert_same_weights(tmp_path / "straight", tmp_path / "split")


def test_auto_holds_the_data_in_ram_on_a_cpu_when_it_fits(basketball_dir, monkeypatch):
    """On a CPU, ``auto`` puts a training split that takes at most a quarter of the available
    RAM in memory (the DataLoader's workers would take cores from training), else reads
    files."""
    from keypoint_wm.data import device_windows
    from keypoint_wm.data.device_windows import dataset_bytes, fits_on_device

    dataset = WindowDataset(EpisodeIndex(basketball_dir, "train", 0.2, min_frames=6), 6, seed=0)
    size = dataset_bytes(dataset)
    cpu = torch.device("cpu")
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < device_windows.available_host_memory() <= total
    monkeypatch.setattr(device_windows, "available_host_memory", lambda: 4 * size)
    assert fits_on_device(dataset, cpu)
    monkeypatch.setattr(device_windows, "available_host_memory", lambda: 4 * size - 1)
    assert not fits_on_device(dataset, cpu)


def test_graphs_and_placements_are_validated(basketball_dir, tmp_path):
    with pytest.raises(UsageError, match="cuda-graph"):
        train(tiny_config(1), basketball_dir, tmp_path / "a", progress=False, cuda_graph="x")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA"):
            train(tiny_config(1), basketball_dir, tmp_path / "b", progress=False,
                  device_name="cpu", cuda_graph="on")  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("threads", [1, 2])
def test_seed_replicas_are_the_single_runs(basketball_dir, tmp_path, threads):
    """One thread: the replicas train one after another; two: side by side, one thread each
    (in their own processes). Either way each is bitwise its single run on one thread."""
    torch.set_num_threads(threads)
    assert side_by_side(torch.device("cpu"), 2) == ((1, None) if threads == 1 else (2, 1))
    config = tiny_config(2).with_overrides({"seed": 7})
    results = train_replicas(config, basketball_dir, tmp_path / "seeds", count=2,
                             device_name="cpu", progress=False)  # fmt: skip
    assert [r["step"] for r in results] == [2, 2]
    torch.set_num_threads(1)
    for seed in (7, 8):
        run = replica_dir(tmp_path / "seeds", seed)
        assert json.loads((run / "config.json").read_text())["seed"] == seed
        train(config.with_overrides({"seed": seed}), basketball_dir, tmp_path / f"single{seed}",
              progress=False)  # fmt: skip
        assert_same_weights(run, tmp_path / f"single{seed}")
    a, b = weights(replica_dir(tmp_path / "seeds", 7)), weights(replica_dir(tmp_path / "seeds", 8))
    assert any(not torch.equal(a[name], b[name]) for name in a)  # seeds differ
