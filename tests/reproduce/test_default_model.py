"""`keypoint-wm reproduce default-model`: the shipped model is made, measured and shipped by
one command, and the shipped files are those measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.mark.integration
def test_default_model_smoke_exports_measures_and_ships(tmp_path):
    import keypoint_wm
    from keypoint_wm.reproduce.dmcs import CHOSEN

    out = tmp_path / "out"
    command = [sys.executable, "-m", "keypoint_wm.cli", "reproduce", "default-model", "--out",
               str(out), "--smoke"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    records = {
        p.stem: json.loads(p.read_text())
        for p in (out / "results" / "default-model").glob("*.json")
    }
    assert {"export", "probe-run", "probe-export", "tracking-export", "fidelity-export",
            "ship"} <= set(records)  # fmt: skip
    # Outside a repository the shipped copy goes to OUT/bundled, never into the package.
    shipped = out / "bundled" / "default"
    model = keypoint_wm.load(shipped, device="cpu")
    card = json.loads((shipped / "card.json").read_text())
    assert card["dtype"] == "float16" and (shipped / "rewards" / "cartpole-balance").is_dir()
    # The shipped weights are the measured export's, bit for bit.
    exported = out / "export" / "default" / "model.safetensors"
    assert (shipped / "model.safetensors").read_bytes() == exported.read_bytes()
    # The chosen variant ships (keypoint_wm.reproduce.dmcs.CHOSEN).
    ship = records["ship"]["command"]
    assert ship.startswith(f"keypoint-wm export --run OUT/runs/{CHOSEN}/seed_0 ")
    assert "--out keypoint_wm/bundled/default" in records["ship"]["command"]
    assert (
        records["probe-export"]["uses"]["world_model"] == records["export"]["uses"]["world_model"]
    )
    assert model.step == card["source"]["step"]
    page = (out / "results" / "default-model.md").read_text()
    assert "float32 run" in page and "Shipped:" in page and "Dream fidelity" in page
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 unit(s) to run" in again.stdout
