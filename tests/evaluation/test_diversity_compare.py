"""Sample diversity (Fig. S12) and the side-by-side comparison of runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keypoint_wm
from keypoint_wm.evaluation.diversity import DiversityConfig, evaluate_diversity


@pytest.mark.integration
def test_deterministic_model_has_no_spread_and_stochastic_one_has(
    tiny_run, rnn_run, basketball_dir
):
    config = DiversityConfig(sequences=(0, 2), samples=5)
    rnn = evaluate_diversity(keypoint_wm.load(rnn_run, device="cpu"), basketball_dir, config)
    vrnn = evaluate_diversity(keypoint_wm.load(tiny_run, device="cpu"), basketball_dir, config)
    assert [s.index for s in rnn.sequences] == [0, 2]
    assert len(rnn.sequences[0].objects) == 6  # ball + 5 offence
    assert rnn.sequences[0].objects[0].name == "ball"
    assert rnn.endpoint_spread < 1e-5
    assert vrnn.endpoint_spread > 1e-3
    obj = vrnn.sequences[0].objects[0]
    assert len(obj.samples) == 5 and len(obj.true) == vrnn.observed_steps + vrnn.predicted_steps
    # best_error / mean_error: the best and the mean over samples of the mean distance to
    # the truth over the predicted steps, as the stored trajectories show.
    samples, true = np.array(obj.samples), np.array(obj.true)
    observed = vrnn.observed_steps
    errors = np.linalg.norm(samples[:, observed:] - true[None, observed:], axis=-1).mean(axis=1)
    assert obj.best_error == pytest.approx(errors.min())
    assert obj.mean_error == pytest.approx(errors.mean())
    # The headline figures are means over every object of every window.
    every = [o for s in vrnn.sequences for o in s.objects]
    assert vrnn.best_error == pytest.approx(np.mean([o.best_error for o in every]))
    # Sampled futures differ, so the best is strictly better than the mean; a deterministic
    # model's samples are all the same future.
    assert all(o.best_error < o.mean_error for o in every)
    assert all(
        o.best_error == pytest.approx(o.mean_error) for s in rnn.sequences for o in s.objects
    )


@pytest.mark.integration
def test_diversity_cli_writes_json_and_figure(tiny_run, basketball_dir, tmp_path):
    out = tmp_path / "diversity.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "diversity", "--run", str(tiny_run),
         "--data", str(basketball_dir), "--sequences", "1", "--samples", "3", "--json", str(out),
         "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(out.read_text())["sequences"][0]["index"] == 1
    assert out.with_suffix(".png").stat().st_size > 0
    bad = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "diversity", "--run", str(tiny_run),
         "--data", str(basketball_dir), "--sequences", "9999", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "--sequences" in bad.stderr


@pytest.mark.integration
def test_compare_puts_runs_side_by_side(tiny_run, rnn_run, basketball_dir, tmp_path):
    out = tmp_path / "report" / "compare.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "compare", str(tiny_run), str(rnn_run),
         "--data", str(basketball_dir), "--json", str(out), "--samples", "3", "--max-windows", "4",
         "--tracking-samples", "3", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    labels = [tiny_run.name, rnn_run.name]
    assert report["labels"] == labels
    for row in ("psnr_closest", "ssim_closest", "psnr_copy_last_frame", "tracking_error_predicted"):
        assert set(report["table"][row]) == set(labels)
    assert "actions" in report["skipped"]  # Basketball has no action labels
    assert set(report["runs"][labels[0]]) >= {"video", "tracking"}
    markdown = out.with_suffix(".md").read_text()
    assert f"| metric | {labels[0]} | {labels[1]} |" in markdown
    plots = report["plots"]
    assert any(p.endswith("compare_psnr.png") for p in plots)
    assert any(p.endswith("compare_tracking_error_predicted.png") for p in plots)
    assert all(Path(p).is_file() and Path(p).parent.parent == out.parent for p in plots)


def test_markdown_bolds_the_best_run_but_not_a_tie():
    from keypoint_wm.evaluation.compare import CompareResult, TableRow, format_markdown

    rows = [
        TableRow("psnr_closest", True, "PSNR closest"),
        TableRow("psnr_copy", True, "PSNR copy last"),
        TableRow("error", False, "error"),
    ]
    result = CompareResult(
        data="figures",
        labels=["vrnn", "cnn"],
        rows=rows,
        table={
            "psnr_closest": {"vrnn": 26.0, "cnn": 25.0},
            "psnr_copy": {"vrnn": 24.0, "cnn": 24.0},
            "error": {"vrnn": 0.1, "cnn": 0.3},
        },
        table_ci=None,
        skipped={},
    )
    lines = format_markdown(result).splitlines()
    assert "| PSNR closest ↑ | **26** | 25 |" in lines
    assert "| PSNR copy last ↑ | 24 | 24 |" in lines  # a baseline of the data: no winner
    assert "| error ↓ | **0.1** | 0.3 |" in lines
