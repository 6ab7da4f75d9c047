"""`keypoint-wm collect` end to end on real dm_control physics and rendering (tiny sizes)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keypoint_wm.collect.config import CollectConfig, CollectError, Shard
from keypoint_wm.collect.runner import collect_dataset
from keypoint_wm.data.episodes import iter_episode_files, load_episode
from keypoint_wm.data.inspect import check_dataset, dataset_info

pytestmark = pytest.mark.integration

TASKS = ("cartpole-balance", "reacher-easy")


def small_config(out: Path, **overrides) -> CollectConfig:
    values = dict(tasks=TASKS, episodes=2, steps=10, action_repeat=2, size=32, seed=5, out=out)
    values.update(overrides)
    return CollectConfig(**values)


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dmcs") / "data"
    summary = collect_dataset(small_config(out), workers=1, progress=False)
    assert summary.episodes_written == 4
    return out


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in iter_episode_files(root)}


def test_episodes_follow_the_format(dataset):
    count, bad = check_dataset(dataset)
    assert count == 4 and not bad
    episode = load_episode(dataset / "reacher-easy" / "episode_000001.npz")
    assert episode.image.shape == (11, 32, 32, 3)
    assert episode.action.shape == (11, 2)
    assert np.all(episode.action[0] == 0) and episode.reward[0] == 0
    assert np.all(np.abs(episode.action[1:]) <= 1)
    assert episode.true_object_pos.shape[0] == 11
    assert episode.metadata["task_name"] == "reacher-easy"
    assert episode.metadata["action_repeat"] == 2
    # frames differ over time: the physics moves under random actions
    assert np.abs(episode.image[-1].astype(int) - episode.image[0]).sum() > 0
    assert (dataset / "manifest.json").exists()


def test_same_seed_gives_identical_bytes_for_any_workers_and_shards(dataset, tmp_path):
    collect_dataset(small_config(tmp_path / "two"), workers=2, progress=False)
    for i in range(2):
        collect_dataset(small_config(tmp_path / "sharded"), Shard(i, 2), workers=1, progress=False)
    reference = file_bytes(dataset)
    assert file_bytes(tmp_path / "two") == reference
    assert file_bytes(tmp_path / "sharded") == reference


def test_rerun_skips_finished_episodes_and_refuses_a_different_dataset(dataset, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    before = {p: p.stat().st_mtime_ns for p in iter_episode_files(out)}
    summary = collect_dataset(small_config(out), workers=1, progress=False)
    assert summary.episodes_written == 0 and summary.episodes_skipped == 4
    assert {p: p.stat().st_mtime_ns for p in iter_episode_files(out)} == before
    with pytest.raises(CollectError, match="steps"):
        collect_dataset(small_config(out, steps=12), workers=1, progress=False)
    assert file_bytes(out) == file_bytes(dataset)


def test_collection_killed_with_sigkill_resumes_to_a_complete_dataset(dataset, tmp_path):
    out = tmp_path / "killed"
    args = ["collect", "--domains", ",".join(TASKS), "--episodes", "4", "--steps", "10",
            "--action-repeat", "2", "--size", "32", "--seed", "5", "--workers", "1",
            "--out", str(out), "--quiet"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "keypoint_wm.cli", *args])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.rglob("*.npz"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(list(iter_episode_files(out))) < 8, "collection finished before the kill"
    survivors = {p: p.stat().st_mtime_ns for p in iter_episode_files(out)}
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    count, bad = check_dataset(out)
    assert count == 8 and not bad
    assert all(p.stat().st_mtime_ns == t for p, t in survivors.items())
    # The first two episodes of each task are the same as in the uninterrupted dataset.
    for relative, data in file_bytes(dataset).items():
        assert (out / relative).read_bytes() == data


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--domains", "chess-play"], "--domains"),
        (["--shard", "3/2"], "--shard"),
        (["--episodes", "0"], "--episodes"),
        (["--steps", "-1"], "--steps"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_bad_flags_exit_non_zero_with_a_clear_message(tmp_path, flags, message):
    result = cli("collect", "--out", str(tmp_path / "d"), *flags)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "d").exists()


def test_out_that_is_a_file_is_left_alone(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("data")
    result = cli("collect", "--domains", "cartpole-balance", "--out", str(target))
    assert result.returncode == 2 and "is a file" in result.stderr
    assert target.read_text() == "data"


def test_data_info_and_check_commands(dataset, tmp_path):
    info = dataset_info(dataset)
    assert info["episodes"] == 4 and info["frames"] == 44
    assert set(info["tasks"]) == set(TASKS)
    assert info["tasks"]["reacher-easy"]["action_size"] == [2]
    result = cli("data", "info", str(dataset))
    assert result.returncode == 0 and "cartpole-balance" in result.stdout
    assert cli("data", "check", str(dataset)).returncode == 0

    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    victim = broken / "cartpole-balance" / "episode_000000.npz"
    victim.write_bytes(victim.read_bytes()[:500])
    snapshot = {p: p.read_bytes() for p in broken.rglob("*.npz")}
    result = cli("data", "check", str(broken))
    assert result.returncode == 1
    assert "episode_000000.npz" in result.stdout and "unreadable" in result.stdout
    assert {p: p.read_bytes() for p in broken.rglob("*.npz")} == snapshot


def test_state_is_the_physics_of_its_frame(dataset):
    """state[t] is the task's observation at the time step image[t] shows: replaying the
    stored actions in a fresh suite env gives the same vector at every frame."""
    from keypoint_wm.envs.dmc import DMCPixelEnv

    path = dataset / "cartpole-balance" / "episode_000001.npz"
    episode = load_episode(path)
    parts = episode.metadata["state_keys"]
    assert [p["name"] for p in parts] == ["position", "velocity"]
    assert [p["kind"] for p in parts] == ["position", "velocity"]
    assert episode.state.shape == (11, parts[-1]["stop"])
    env = DMCPixelEnv("cartpole", "balance", size=32, action_repeat=2)
    try:
        env.reset(seed=episode.metadata["seed"])
        physics = env.physics
        for t in range(episode.num_frames):
            if t:
                env.step(episode.action[t])
            cart = physics.named.data.qpos["slider"][0]
            pole = physics.named.data.qpos["hinge_1"][0]
            expected = [cart, np.cos(pole), np.sin(pole), *physics.data.qvel]
            np.testing.assert_allclose(episode.state[t], expected, rtol=1e-5, atol=1e-6)
    finally:
        env.close()
    info = dataset_info(dataset)
    assert info["tasks"]["cartpole-balance"]["state_size"] == [5]
    reacher = info["tasks"]["reacher-easy"]["state_keys"]
    assert [(k["name"], k["kind"]) for k in reacher] == [
        ("position", "angle"),  # raw joint angles: the shoulder turns without limit
        ("to_target", "position"),
        ("velocity", "velocity"),
    ]


def test_a_damaged_episode_is_collected_again_and_said(dataset, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(dataset, out)
    broken = out / "cartpole-balance" / "episode_000001.npz"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # truncated
    config = small_config(out)
    again = cli("collect", "--domains", ",".join(config.tasks), "--episodes", str(config.episodes),
                "--steps", str(config.steps), "--action-repeat", str(config.action_repeat),
                "--size", str(config.size), "--seed", str(config.seed), "--out", str(out),
                "--workers", "1", "--quiet")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "1 damaged ones collected again" in again.stdout + again.stderr
    assert file_bytes(out) == file_bytes(dataset)


def test_a_bad_camera_is_named_before_anything_is_written_and_can_be_corrected(tmp_path):
    out = tmp_path / "cam"
    args = ["collect", "--domains", "cartpole-balance", "--episodes", "1", "--steps", "4",
            "--size", "32", "--out", str(out), "--quiet"]  # fmt: skip
    bad = cli(*args, "--camera", "99")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
    assert "--camera 99" in bad.stderr and "Traceback" not in bad.stderr
    good = cli(*args, "--camera", "0")
    assert good.returncode == 0, good.stderr
    assert len(list(iter_episode_files(out))) == 1


def test_two_collections_of_different_datasets_started_together_never_mix(tmp_path):
    out = tmp_path / "shared"
    base = ["collect", "--domains", "cartpole-balance", "--episodes", "3", "--steps", "10",
            "--size", "32", "--workers", "1", "--out", str(out), "--quiet"]  # fmt: skip
    command = [sys.executable, "-m", "keypoint_wm.cli", *base]
    processes = [
        subprocess.Popen([*command, "--seed", str(seed)], stderr=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert sorted(code == 0 for code, _ in results) == [False, True], results
    refused = next(err for code, err in results if code != 0)
    assert len(refused.strip().splitlines()) == 1
    assert "already holds a different dataset" in refused or "another process" in refused
    assert len(list(iter_episode_files(out))) == 3
    winner = next(s for s, (code, _) in zip((1, 2), results, strict=True) if code == 0)
    assert json.loads((out / "manifest.json").read_text())["spec"]["seed"] == winner
    reference = collect_dataset(
        small_config(tmp_path / "alone", tasks=("cartpole-balance",), episodes=3, seed=winner),
        workers=1,
        progress=False,
    )
    assert reference.episodes_written == 3
    assert file_bytes(out) == file_bytes(tmp_path / "alone")  # the winner's, whole


def _stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name (state, ppid, pgrp, ...); [] when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rindex(")") + 2 :].split()


def process_group(pgid: int) -> dict[int, str]:
    """Every process of group ``pgid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[2:3] == [str(pgid)]:
            with contextlib.suppress(OSError):  # gone meanwhile
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
    return {pid: command.decode() for pid, command in found.items()}


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended; only its exit status is left)."""
    return _stat(pid)[:1] not in ([], ["Z"])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_the_episodes_in_progress_and_leaves_no_process(tmp_path, sig):
    """SIGTERM (a scheduler) or SIGINT (Ctrl-C) to ``collect --workers 2``: exit 128 + the
    signal in one line, every episode file whole, and no process of its group (the two
    workers, multiprocessing's resource tracker) alive once it has exited."""
    out = tmp_path / "stopped"
    args = ["collect", "--domains", ",".join(TASKS), "--episodes", "20", "--steps", "40",
            "--size", "32", "--seed", "5", "--workers", "2", "--out", str(out),
            "--quiet"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: every child it starts joins it
    )
    seen: dict[int, str] = {}
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.rglob("*.npz"))) < 2:
        seen.update(process_group(process.pid))
        time.sleep(0.05)
    seen.update(process_group(process.pid))
    commands = list(seen.values())
    assert sum("spawn_main" in c for c in commands) == 2, commands  # the two workers
    assert sum("resource_tracker" in c for c in commands) == 1, commands  # its queues' locks
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    name = signal.Signals(sig).name
    assert process.returncode == 128 + sig, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"stopped by {name} after" in lines[0], stderr
    assert "episodes, each written whole; run the same command again" in lines[0]

    def alive() -> set[int]:
        """Those seen in its group, and any in it now, that still run (a zombie has ended)."""
        pids = {*seen, *process_group(process.pid)}
        return {pid for pid in pids if running(pid)}

    deadline = time.time() + 10  # the tracker ends on its own once its pipe closes
    while alive() and time.time() < deadline:
        time.sleep(0.1)
    assert alive() == set(), {pid: seen.get(pid) for pid in alive()}
    count, bad = check_dataset(out)
    assert not bad and 0 < count < 40  # every file written whole


def test_a_manifest_without_episodes_does_not_hold_the_folder(tmp_path):
    """A collection that failed before its first episode left only its manifest: the
    corrected command takes the folder; once an episode exists, the folder is held."""
    from keypoint_wm.data.episodes import write_manifest

    out = tmp_path / "empty"
    out.mkdir()
    write_manifest(out, {"spec": {**small_config(out).dataset_spec(), "camera_id": 99}})
    config = small_config(out, tasks=("cartpole-balance",), episodes=1, steps=4)
    assert collect_dataset(config, workers=1, progress=False).episodes_written == 1
    with pytest.raises(CollectError, match="already holds a different dataset"):
        collect_dataset(small_config(out, tasks=("cartpole-balance",), episodes=1, steps=5))
