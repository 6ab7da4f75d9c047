"""A full disk or a read-only folder ends a command in one line naming the path and the
cause, and never costs finished work: the real commands on a small tmpfs (mounting one
needs root; elsewhere these tests skip)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kwm_testing import TINY_OVERRIDES
from latent_testing import tiny_dmc_data, tiny_dmc_run

from keypoint_wm.checkpoint import latest_checkpoint

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def mounted(folder: Path, *options: str) -> Iterator[Path]:
    """A tmpfs at ``folder`` with mount ``options`` (e.g. ``size=2m``, ``ro``)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` as it is, made read-only (bound onto itself, then remounted ``ro``)."""
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here ({done.stderr.strip()})")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here ({done.stderr.strip()})")
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with one file, leaving about ``leave`` bytes free; returns the file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:  # unbuffered: nothing left to flush (and fail) at close
            f.write(b"\0" * 4096)
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler.stat().st_size - leave))
    return filler


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args], capture_output=True, text=True
    )


def train(data: Path, run: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
    sets = {**TINY_OVERRIDES, "train.checkpoint_every": 2, "train.probe_every": 0}
    command = ["train", "--data", str(data), "--preset", "basketball-cpu", "--seed", "3",
               "--out", str(run), "--steps", str(steps), "--quiet", *extra]  # fmt: skip
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    return cli(*command)


def one_line_error(done: subprocess.CompletedProcess, *words: str, code: int = 1) -> str:
    """The command failed with exit ``code`` and one error line holding ``words``; returns
    it."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, done.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def test_train_on_a_full_disk_says_so_keeps_its_checkpoints_and_resumes_once_there_is_room(
    basketball_dir, tmp_path
):
    with mounted(tmp_path / "disk", "size=4m") as disk:
        run = disk / "run"
        assert train(basketball_dir, run, 4).returncode == 0
        filler = fill(disk, leave=32 * 1024)  # room for the config, not for a checkpoint
        done = train(basketball_dir, run, 8, "--resume")
        line = one_line_error(done, "no space left on the device", str(run))
        assert "checkpoint of step 4 is intact: once there is room, continue" in line
        names = sorted(p.name for p in (run / "checkpoints").iterdir())
        assert names == ["step_00000002", "step_00000004"]  # no half-written step_6 left
        filler.unlink()
        done = train(basketball_dir, run, 8, "--resume")
        assert done.returncode == 0, done.stderr
        assert "step_00000008" in {p.name for p in (run / "checkpoints").iterdir()}


def test_train_into_a_read_only_folder_is_one_line_naming_it(basketball_dir, tmp_path):
    """The folder the user gave, not the hidden writer lock beside it."""
    with mounted(tmp_path / "ro", "ro", "size=1m") as ro:
        line = one_line_error(train(basketball_dir, ro / "run", 2))
        assert line.endswith(
            f"error: --out {ro / 'run'}: the file system is read-only (cannot create the run's "
            "writer lock)"
        ), line


def test_train_whose_checkpoints_turn_read_only_says_so_not_that_the_disk_is_full(
    basketball_dir, tmp_path
):
    run = tmp_path / "run"
    assert train(basketball_dir, run, 2).returncode == 0
    with read_only(run / "checkpoints"):
        done = train(basketball_dir, run, 4, "--resume")
        line = one_line_error(done, str(run), "cannot save the checkpoint of step 4")
        assert (
            "(the file system is read-only); its checkpoint of step 2 is intact: once the "
            "file system is writable again, continue with the same command and --resume" in line
        )
        assert "room" not in line
    assert latest_checkpoint(run).name == "step_00000002"


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_evaluate_refuses_an_output_it_cannot_write_before_evaluating(
    tiny_run, basketball_dir, tmp_path, flag
):
    """``--json`` (or a given ``--plot``) in a read-only folder is refused up front: exit 2,
    one line naming the flag and the folder, nothing evaluated, nothing written."""
    with mounted(tmp_path / "ro", "ro", "size=1m") as ro:
        outputs = {"--json": str(tmp_path / "t.json"), "--plot": str(tmp_path / "t.png")}
        outputs[flag] = str(ro / "sub" / f"t{Path(outputs[flag]).suffix}")  # made if need be
        done = cli("evaluate", "tracking", "--run", str(tiny_run), "--data", str(basketball_dir),
                   "--samples", "2", "--quiet", *(x for item in outputs.items() for x in item))  # fmt: skip
        line = one_line_error(done, code=2)
        assert line.endswith(
            f"error: {flag} {outputs[flag]}: cannot write in {ro} (the file system is read-only)"
        ), line
        assert done.stdout == ""  # no table: nothing was evaluated
    assert list(tmp_path.iterdir()) == [tmp_path / "ro"]


def test_collect_on_a_full_disk_is_one_line_naming_the_file(tmp_path):
    with mounted(tmp_path / "disk", "size=48k") as disk:
        done = cli("collect", "--domains", "cartpole-balance", "--episodes", "6", "--steps",
                   "20", "--size", "32", "--workers", "1", "--out", str(disk / "d"), "--quiet")  # fmt: skip
        one_line_error(done, str(disk), "no space left on the device")


def test_rewards_train_into_a_read_only_folder_is_one_line_naming_it(tmp_path_factory, tmp_path):
    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    with mounted(tmp_path / "ro", "ro", "size=1m") as ro:
        done = cli("rewards", "train", "--run", str(run), "--data", str(data), "--out",
                   str(ro / "heads"), "--steps", "2", "--quiet")  # fmt: skip
        one_line_error(done, str(ro), "read-only")
