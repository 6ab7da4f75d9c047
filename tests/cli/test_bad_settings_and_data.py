"""Bad settings, data, checkpoints and resumes end in one line naming the flag or file and
what was expected, the right exit code, no traceback, and nothing on disk changed (or, where
there is a sensible fallback, a warning that says so). Each runs the real command in a
subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from kwm_testing import TINY_OVERRIDES

from keypoint_wm.data.episodes import Episode, save_episode
from keypoint_wm.data.sequences import is_test_file, is_validation_file

pytestmark = pytest.mark.integration

TINY_SETS = [f"--set={k}={v}" for k, v in {**TINY_OVERRIDES, "train.probe_every": 0}.items()]


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def train(data: Path, run: Path, *extra: str | Path) -> subprocess.CompletedProcess:
    return cli("train", "--data", data, "--out", run, "--preset", "basketball-cpu",
               "--device", "cpu", "--quiet", *TINY_SETS, *extra)  # fmt: skip


def tree_digest(*roots: Path) -> dict[str, str]:
    """Every file under the roots -> sha256 of its bytes."""
    files = sorted(p for root in roots for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ": error: " in lines[0], result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def assert_ok_with_warning(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and ": error: " not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


def write_dataset(root: Path, names=("a", "b", "c", "d"), actions: int = 2) -> Path:
    """Tiny episodes (12 frames of 32x32, ``actions`` per step, one object) in ``root/t``."""
    rng = np.random.default_rng(0)
    for name in names:
        action = rng.uniform(-1, 1, (12, actions)).astype(np.float32)
        action[0] = 0
        image = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
        positions = rng.uniform(-1, 1, (12, 1, 2)).astype(np.float32)
        save_episode(root / "t" / f"{name}.npz",
                     Episode(image, action, np.zeros(12, np.float32), positions))  # fmt: skip
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data, run): a run trained to step 4 with checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("trained")
    data = write_dataset(root / "data", actions=0)
    result = train(data, root / "run", "--steps", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    return data, root / "run"


def copy_run(trained: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    data, run = trained
    shutil.copytree(run, tmp_path / "run")
    return data, tmp_path / "run"


# --------------------------------------------------------------- --set values of the wrong type
@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("train.steps=abc", "expected an integer"),
        ("model.num_keypoints=2.5", "expected an integer"),
        ("train.learning_rate=fast", "expected a number"),
    ],
)
def test_set_value_of_the_wrong_type_names_key_value_and_type(tmp_path, item, expected):
    data = write_dataset(tmp_path / "data")
    before = tree_digest(data)
    result = train(data, tmp_path / "run", "--set", item)
    assert_one_line_error(result, 2, f"--set {item}", expected)
    assert not (tmp_path / "run").exists() and tree_digest(data) == before


# --------------------------------------------------- an action-free preset on data with actions
def test_action_free_preset_on_data_with_actions_trains_without_them(tmp_path):
    data = write_dataset(tmp_path / "data", actions=2)
    before = tree_digest(data)
    result = train(data, tmp_path / "run", "--steps", "2")
    assert_ok_with_warning(result, "the data has actions", "the actions are ignored")
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["action_size"] == 0
    assert (tmp_path / "run" / "checkpoints" / "step_00000002").is_dir()
    assert tree_digest(data) == before


# -------------------------------------------------------------------------- damaged checkpoints
def test_resume_skips_a_damaged_newest_checkpoint_naming_it(trained, tmp_path):
    data, run = copy_run(trained, tmp_path)
    damaged = run / "checkpoints" / "step_00000004"
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    result = train(data, run, "--steps", "4", "--resume")
    assert_ok_with_warning(result, f"{damaged} (model.safetensors holds", "step_00000002")
    state = json.loads((run / "checkpoints" / "step_00000004" / "state.json").read_text())
    assert state["step"] == 4  # retrained from step 2 and saved again, whole


def test_no_valid_checkpoint_is_one_line_naming_the_run(trained, tmp_path):
    data, run = copy_run(trained, tmp_path)
    for checkpoint in (run / "checkpoints").iterdir():
        (checkpoint / "model.safetensors").write_bytes(b"not safetensors")
    before = tree_digest(run, data)
    result = train(data, run, "--steps", "6", "--resume")
    assert_one_line_error(result, 1, f"{run}: no valid checkpoint", "step_00000004")
    assert tree_digest(run, data) == before


# ---------------------------------------------------------------------------- bad episode files
def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _bad_file(path: Path, case: str) -> None:
    image = np.zeros((12, 32, 32, 3), np.uint8)
    if case == "non-npy zip member":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("image.npy", _npy_bytes(image))
            archive.writestr("readme.txt", b"hello")
        return
    arrays = {
        "float image": {"image": image.astype(np.float32)},
        "metadata not an object": {"image": image, "metadata": np.array('"just a string"')},
        "1-D action": {"image": image, "action": np.zeros(12, np.float32)},
        "1-D true_object_pos": {"image": image, "true_object_pos": np.zeros(12, np.float32)},
        "action length mismatch": {"image": image, "action": np.zeros((8, 2), np.float32)},
        "float64 action": {"image": image, "action": np.zeros((12, 2))},
        "image shape": {"image": np.zeros((12, 16, 16, 3), np.uint8)},
        "NaN action": {"image": image, "action": np.full((12, 2), np.nan, np.float32)},
    }[case]
    np.savez(path, **arrays)


BAD_EPISODE_FILES = {
    "float image": "'image' must be uint8 [T,H,W,3], got float32",
    "metadata not an object": "'metadata' must be a JSON object, got a JSON str",
    "1-D action": "'action' must be float32 [12,A], got float32 [12]",
    "1-D true_object_pos": "'true_object_pos' must be float32 [12,N,2]",
    "action length mismatch": "'action' must be float32 [12,A], got float32 [8, 2]",
    "float64 action": "'action' must be float32 [12,A], got float64",
    "image shape": "image shape 16x16x3 differs from the dataset's 32x32x3",
    "non-npy zip member": "zip member 'readme.txt' is not a .npy array",
    "NaN action": "'action' has non-finite values",
}


@pytest.mark.parametrize("case", sorted(BAD_EPISODE_FILES))
def test_train_names_the_bad_file_and_the_reason(tmp_path, case):
    data = write_dataset(tmp_path / "data")
    bad = data / "t" / "z_bad.npz"
    _bad_file(bad, case)
    before = tree_digest(data)
    result = train(data, tmp_path / "run", "--steps", "2")
    assert_one_line_error(result, 1, f"{bad}: ", BAD_EPISODE_FILES[case])
    assert not (tmp_path / "run").exists() and tree_digest(data) == before


def test_data_check_names_every_case_train_names(tmp_path):
    data = write_dataset(tmp_path / "data")
    for number, case in enumerate(sorted(BAD_EPISODE_FILES)):
        _bad_file(data / "t" / f"z{number}.npz", case)
    before = tree_digest(data)
    result = cli("data", "check", data)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for number, case in enumerate(sorted(BAD_EPISODE_FILES)):
        line = next(x for x in result.stdout.splitlines() if f"z{number}.npz:" in x)
        assert line.startswith("BAD ") and BAD_EPISODE_FILES[case] in line, (case, line)
    assert f"4 of {4 + len(BAD_EPISODE_FILES)} episode files valid" in result.stdout
    assert tree_digest(data) == before


# ------------------------------------------------------------------------------------ data info
def test_data_info_on_a_1d_action_names_the_file(tmp_path):
    data = write_dataset(tmp_path / "data")
    np.savez(data / "t" / "z.npz", image=np.zeros((12, 32, 32, 3), np.uint8),
             action=np.zeros(12, np.float32))  # fmt: skip
    before = tree_digest(data)
    result = cli("data", "info", data)
    assert_one_line_error(result, 1, "z.npz: 'action' must be float32 [12,A]", "data check")
    assert tree_digest(data) == before


def test_data_info_on_a_pickle_named_npz_never_unpickles_it(tmp_path):
    data = write_dataset(tmp_path / "data")
    marker = tmp_path / "unpickled"
    (data / "t" / "z.npz").write_bytes(pickle.dumps(_Touch(str(marker))))
    before = tree_digest(data)
    result = cli("data", "info", data)
    assert_one_line_error(result, 1, "z.npz: unreadable, not an .npz archive")
    assert not marker.exists() and tree_digest(data) == before


class _Touch:
    """Unpickling this would create a file: the proof that nothing unpickles."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_data_info_json_at_a_directory_is_refused(tmp_path):
    data = write_dataset(tmp_path / "data")
    (tmp_path / "out").mkdir()
    before = tree_digest(data)
    result = cli("data", "info", data, "--json", tmp_path / "out")
    assert_one_line_error(result, 2, f"--json {tmp_path / 'out'}", "is a directory")
    assert tree_digest(data) == before and not any((tmp_path / "out").iterdir())


# --------------------------------------------------------------------------------------- resume
def test_resume_with_fewer_steps_than_reached_is_refused(trained, tmp_path):
    data, run = copy_run(trained, tmp_path)
    before = tree_digest(run, data)
    result = train(data, run, "--steps", "2", "--resume")
    assert_one_line_error(result, 1, f"the run in {run} is already at step 4 > --steps 2")
    assert tree_digest(run, data) == before
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4


def test_resume_accepts_the_same_data_moved_elsewhere(trained, tmp_path):
    data, run = copy_run(trained, tmp_path)
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)
    result = train(moved, run, "--steps", "6", "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["root"] == str(moved.resolve()) and config["train"]["steps"] == 6
    assert (run / "checkpoints" / "step_00000006").is_dir()


# ------------------------------------------------------------ a killed writer's temporary files
def test_the_next_start_removes_a_killed_writers_temp_dir_only(trained, tmp_path):
    data, run = copy_run(trained, tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stale = run / "checkpoints" / f".step_00000006.{int(dead.stdout)}.tmp"
        busy = run / "checkpoints" / f".step_00000006.{live.pid}.tmp"
        for directory in (stale, busy):
            directory.mkdir()
            (directory / "model.safetensors").write_bytes(b"half written")
        result = train(data, run, "--steps", "4", "--resume")  # at step 4: nothing to train
        assert result.returncode == 0, result.stderr[-3000:]
        assert not stale.exists() and busy.exists()
    finally:
        live.kill()
        live.wait()


# -------------------------------------------------------------------------- unreadable episodes
def test_an_unreadable_episode_is_bad_data_exit_1_not_usage(tmp_path):
    data = write_dataset(tmp_path / "data")
    truncated = data / "t" / "b.npz"
    truncated.write_bytes(truncated.read_bytes()[:200])
    before = tree_digest(data)
    result = train(data, tmp_path / "run", "--steps", "2")
    assert_one_line_error(result, 1, f"{truncated}: unreadable")
    assert tree_digest(data) == before


# -------------------------------------------------------- data check refuses what train refuses
def test_data_check_refuses_what_train_refuses(tmp_path):
    data = write_dataset(tmp_path / "data")
    write_dataset(tmp_path / "small", names=("s",))
    small = tmp_path / "small" / "t" / "s.npz"
    with np.load(small) as arrays:
        shrunk = {k: arrays[k] for k in arrays.files}
    shrunk["image"] = shrunk["image"][:, :16, :16]
    np.savez(data / "t" / "s.npz", **shrunk)
    listed = dict(np.load(data / "t" / "a.npz"))
    listed["metadata"] = np.array("[1, 2, 3]")
    np.savez(data / "t" / "m.npz", **listed)
    before = tree_digest(data)
    result = cli("data", "check", data)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    bad = {line.split(":")[0].removeprefix("BAD "): line for line in result.stdout.splitlines()
           if line.startswith("BAD ")}  # fmt: skip
    assert set(bad) == {str(data / "t" / "s.npz"), str(data / "t" / "m.npz")}
    assert (
        "image shape 16x16x3 differs from the dataset's 32x32x3" in bad[str(data / "t" / "s.npz")]
    )
    assert "'metadata' must be a JSON object, got a JSON list" in bad[str(data / "t" / "m.npz")]
    assert tree_digest(data) == before


# -------------------------------------------------------- the probe without validation episodes
def test_no_validation_episode_for_the_probe_trains_without_it_and_says_so(tmp_path):
    names = [f"e{i}" for i in range(40) if not is_test_file(f"t/e{i}.npz", 0.2)
             and not is_validation_file(f"t/e{i}.npz", 0.1)][:3]  # fmt: skip
    data = write_dataset(tmp_path / "data", names=names)
    result = train(data, tmp_path / "run", "--steps", "2", "--set", "train.probe_every=1")
    assert_ok_with_warning(result, "tracking probe off", "no validation episode files",
                           "train.validation_fraction", "--set train.probe_every=0")  # fmt: skip
    assert (tmp_path / "run" / "checkpoints" / "step_00000002").is_dir()


# ------------------------------------------------------------------------------ smaller ones
def test_frames_the_network_cannot_take_are_blamed_on_the_data_not_on_set(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c", "d"):
        image = rng.integers(0, 255, (12, 24, 24, 3), dtype=np.uint8)  # 24 / 8: no power of 2
        episode = Episode(image, np.zeros((12, 0), np.float32), np.zeros(12, np.float32),
                          np.zeros((12, 1, 2), np.float32))  # fmt: skip
        save_episode(tmp_path / "data" / "t" / f"{name}.npz", episode)
    result = train(tmp_path / "data", tmp_path / "run", "--steps", "2")
    assert_one_line_error(result, 1, f"--data {tmp_path / 'data'}", "24x24", "--size")
    assert "--set/--config" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_data_folder_that_is_a_symlink_loop_is_named_as_one(tmp_path):
    (tmp_path / "one").symlink_to(tmp_path / "two")
    (tmp_path / "two").symlink_to(tmp_path / "one")
    assert_one_line_error(cli("data", "check", tmp_path / "one"), 1, "loops")
    assert_one_line_error(train(tmp_path / "one", tmp_path / "run"), 2, "loops")


def test_data_check_on_an_unfinished_collection_says_how_many_are_missing(tmp_path):
    data = write_dataset(tmp_path / "data")
    manifest = {"dataset": "dmcs", "spec": {"episodes": 6, "tasks": ["t"]}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    result = cli("data", "check", data)
    assert result.returncode == 1
    assert "4 of 4 episode files valid" in result.stdout
    assert "lists 6 episodes, 2 of them missing" in result.stdout


def test_a_model_too_large_for_memory_is_one_line_and_leaves_no_run_folder(tmp_path):
    data = write_dataset(tmp_path / "data", actions=0)
    result = train(data, tmp_path / "run", "--steps", "2", "--set", "model.num_keypoints=100000")
    assert_one_line_error(result, 1, "does not fit in memory", "model.num_keypoints 100000")
    assert not (tmp_path / "run").exists()
