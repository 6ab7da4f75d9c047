"""``keypoint-wm rewards evaluate``: normalised reward-prediction error, variants side by side.

For each world-model run and task: the run's heads (``RUN/rewards/<task>``, trained by
``keypoint-wm rewards train``) predict the rewards of the held-out 20 % of the test split's
windows (the same windows and split as in training: window, stride, seed, fraction and split
are read from each head). The error is the MSE divided by that of a null model predicting the
mean training reward (paper Figure 8), per time step with a 95 % confidence interval over
windows, and overall. Runs sharing a label are training seeds of one variant (as are the
``seed_<s>/`` runs of a ``train --seeds N`` folder; :func:`keypoint_wm.run_groups.group_runs`,
as in ``evaluate compare``): each variant reports the mean over its seeds and the 95 %
interval over them (:mod:`keypoint_wm.evaluation.seeds`). Output: a table (tasks x
variants), a JSON object and a plot like Figure 8 (:mod:`keypoint_wm.rewards.report`, its
names importable from here too).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.evaluation.seeds import OverSeeds, check_one_variant
from keypoint_wm.model.device import resolve_device
from keypoint_wm.reward_inputs import inputs_mismatch
from keypoint_wm.rewards.fit import RewardTrainConfig, normalized_mse, predict
from keypoint_wm.rewards.head import RewardHead, find_reward_head, load_reward_head
from keypoint_wm.rewards.report import (
    RewardEvaluation,
    RunRewardScores,
    TaskRewardScore,
    format_reward_table,
    plot_reward_prediction,
)
from keypoint_wm.rewards.sequences import (
    RewardSequences,
    check_held_out,
    collect_reward_sequences,
    head_episodes,
    split_sequences,
)
from keypoint_wm.rewards.train import train_reward_heads
from keypoint_wm.run_groups import Variant, group_runs

__all__ = [
    "RewardEvaluation",
    "RunRewardScores",
    "TaskRewardScore",
    "evaluate_reward_prediction",
    "format_reward_table",
    "plot_reward_prediction",
]


def _label(variant: Variant, config: Any) -> str:
    """``--label``, else the variant's directory name and its model kind."""
    if variant.labelled:
        return variant.name
    names = {"keypoints": "Struct", "cnn": "CNN"}
    model = config.model
    kind = f"{names.get(model.representation, model.representation)}-{model.dynamics.upper()}"
    return f"{variant.name} ({kind})"


@dataclass(frozen=True)
class _Planned:
    """A variant of :func:`~keypoint_wm.run_groups.group_runs`, each seed with its heads."""

    variant: Variant
    runs: list[tuple[Path, Path, str | None]]  # (run, its head directory, inputs of new heads)


def _plan(
    runs: list[str | Path],
    labels: list[str] | None,
    heads: list[str | Path] | None,
    inputs: list[str] | None,
) -> list[_Planned]:
    """The runs grouped into variants, each seed given the ``--heads`` and ``--inputs`` of
    the ``--run`` it came from (a seed folder's seeds: each its own ``seed_<s>/rewards``).

    Raises:
        UsageError: what :func:`~keypoint_wm.run_groups.group_runs` refuses; not one head
            directory or inputs per run where given; ``--heads`` for a folder of seed runs.
    """
    if heads and len(heads) != len(runs):
        raise UsageError(f"--heads: give one directory per --run ({len(runs)}), got {len(heads)}")
    if inputs and len(inputs) != len(runs):
        raise UsageError(
            f"--inputs: give it once for every run or once per --run ({len(runs)}), "
            f"got {len(inputs)}"
        )
    variants = group_runs(runs, labels)
    planned = []
    for variant in variants:
        members = []
        for seed in variant.seeds:
            if heads and seed.run != seed.given:
                raise UsageError(
                    f"--heads {heads[seed.index]}: --run {seed.given} is a folder of seed runs; "
                    "each seed's heads are read from its own seed_<s>/rewards (leave --heads out)"
                )
            head_root = Path(heads[seed.index]) if heads else seed.run / "rewards"
            members.append((seed.run, head_root, inputs[seed.index] if inputs else None))
        planned.append(_Planned(variant, members))
    return planned


def evaluate_reward_prediction(
    runs: list[str | Path],
    data_dir: str | Path,
    labels: list[str] | None = None,
    heads: list[str | Path] | None = None,
    tasks: list[str] | None = None,
    train_missing: bool = False,
    train_config: RewardTrainConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    precision: str = "auto",
    inputs: list[str] | None = None,
    held_out: tuple[Path, ...] = (),
) -> RewardEvaluation:
    """Score the reward heads of one or more runs on the same data.

    Args:
        runs: run directories (e.g. a Struct-VRNN and a CNN-VRNN run), or folders of
            ``seed_<s>/`` runs (``train --seeds N``: the seeds of one variant).
        data_dir: the dataset the heads were trained on.
        labels: a name per run (default: directory name and model kind); runs sharing a
            label are the seeds of one variant.
        heads: head directories per run (default ``RUN/rewards``).
        tasks: only these tasks (default: every task with a head).
        train_missing: train heads that are missing (with ``train_config``) instead of
            raising.
        device: where the runs' models run (None: the one rule of
            :func:`keypoint_wm.model.device.resolve_device`).
        precision: the image networks' precision (``"auto"``: as in training).
        inputs: what the heads trained here read, one per run (overrides
            ``train_config.inputs``), e.g. Struct-VRNN's ``"hidden+keypoints"`` beside
            CNN-VRNN's ``"hidden+features"`` (each model's own representation of frame t).
            A run given in several variants (labelled apart, with other head directories) is
            observed once: its windows are kept until its last use.
        held_out: datasets the world models never saw, whose every episode joins the test
            split's (:func:`~keypoint_wm.rewards.sequences.check_held_out`); heads are
            scored only with the held-out data they were trained with.

    Raises:
        DataError: a run has no heads (the message says how to train them).
        UsageError: ``labels``, ``heads`` or ``inputs`` do not match ``runs``; a run given
            twice in one variant, or (without labels) twice at all; runs sharing a label
            have different model configs; a head reads another model's per-frame
            representation (``hidden+keypoints`` of a CNN-VRNN run, ``hidden+features`` of a
            Struct-VRNN one).
    """
    import keypoint_wm

    planned = _plan(runs, labels, heads, inputs)
    # Windows observed by each run, kept while a later entry still reads the same run.
    uses: dict[Path, int] = {}
    for variant in planned:
        for run, _, _ in variant.runs:
            uses[run.resolve()] = uses.get(run.resolve(), 0) + 1
    windows: dict[Path, dict[tuple, dict[str, RewardSequences]]] = {}
    config = train_config or RewardTrainConfig()
    variants = []
    for variant in planned:
        scores: list[RunRewardScores] = []
        configs: list[dict[str, Any]] = []
        for run, head_root, what in variant.runs:
            model = keypoint_wm.load(run, device=resolve_device(device), precision=precision)
            label = _label(variant.variant, model.config)
            run_config = config if what is None else dataclasses.replace(config, inputs=what)
            same_run = run.resolve()
            collected = windows.setdefault(same_run, {})
            check_held_out(held_out, data_dir, model)
            settings = (data_dir, tasks, train_missing, run_config, progress, collected, held_out)
            scores.append(_score_run(model, run, head_root, label, *settings))
            uses[same_run] -= 1
            if not uses[same_run]:
                del windows[same_run]
            configs.append(model.config.model.to_dict())
            seeds = [r for r, _, _ in variant.runs[: len(configs)]]
            check_one_variant(seeds, configs, variant.variant.seed_hint)
        variants.append(OverSeeds(tuple(str(r) for r, _, _ in variant.runs), tuple(scores)))
    return RewardEvaluation(str(data_dir), variants)


def _score_run(
    model: Any,
    run: Path,
    head_root: Path,
    label: str,
    data_dir: str | Path,
    tasks: list[str] | None,
    train_missing: bool,
    config: RewardTrainConfig,
    progress: bool,
    collected: dict[tuple, dict[str, RewardSequences]],
    held_out: tuple[Path, ...] = (),
) -> RunRewardScores:
    """One run's heads scored on their held-out windows (trained first if missing and
    ``train_missing``).

    ``collected``: the run's windows by (window, stride, max_windows, seed), filled here
    and reused: heads trained here are scored on the windows they were trained with, and a
    run scored again (other heads) is not observed again.
    """
    if train_missing and tasks is None:  # every task the heads can read, named: a folder
        tasks = _head_tasks(model, data_dir, config, held_out)  # left part-way is completed
    wanted = _tasks_with_heads(head_root, tasks)
    if not wanted or (tasks and set(wanted) != set(tasks)):
        if not train_missing or tasks is None:  # (with train_missing, tasks are named above)
            find_reward_head(head_root, tasks[0] if tasks else None)  # raises with a hint
            raise DataError(
                f"{head_root}: heads missing for some of --tasks {tasks}; train them with "
                f"`keypoint-wm rewards train --run {run} --data {data_dir}` or pass "
                "--train-missing"
            )
        _train_missing_heads(model, head_root, wanted, data_dir, tasks, config, progress,
                             collected, held_out)  # fmt: skip
        wanted = _tasks_with_heads(head_root, tasks)
    loaded = {task: load_reward_head(head_root, task, model.device) for task in wanted}
    _check_heads_fit(loaded, head_root, model.config.model.representation, held_out)
    # Heads trained together share the window settings: collect once per setting.
    groups: dict[tuple, list[str]] = {}
    for task, head in loaded.items():
        meta = head.config.metadata
        setting = tuple(meta.get(k) for k in ("window", "stride", "max_windows", "seed"))
        groups.setdefault(setting, []).append(task)
    defaults = RewardTrainConfig()
    scores: dict[str, TaskRewardScore] = {}
    for (window, stride, max_windows, seed), group in groups.items():
        key = (
            window or defaults.window,
            stride or defaults.stride,
            max_windows or defaults.max_windows,
            defaults.seed if seed is None else seed,
        )
        sequences = collected.get(key, {})
        if not set(group) <= set(sequences):
            sequences = collected[key] = {
                **sequences,
                **_collect(model, data_dir, key, group, progress, held_out),
            }
        for task in group:
            scores[task] = _score_head(loaded[task], sequences[task], key[3])
    return RunRewardScores(
        label=label,
        run=str(run),
        checkpoint_step=model.step,
        representation=model.config.model.representation,
        dynamics=model.config.model.dynamics,
        tasks=scores,
    )


def _train_missing_heads(
    model: Any,
    head_root: Path,
    wanted: list[str],
    data_dir: str | Path,
    tasks: list[str],
    config: RewardTrainConfig,
    progress: bool,
    collected: dict[tuple, dict[str, RewardSequences]],
    held_out: tuple[Path, ...],
) -> None:
    """Train the heads of ``tasks`` not in ``wanted``, on the run's windows of ``config``'s
    setting (collected here unless they are already)."""
    key = (config.window, config.stride, config.max_windows, config.seed)
    have = collected.get(key, {})
    lacking = [t for t in tasks if t not in have]
    if lacking:
        collected[key] = {**have, **_collect(model, data_dir, key, lacking, progress, held_out)}
    # Only the heads that are missing: a run killed part-way keeps the ones it finished.
    missing = [t for t in tasks if t not in wanted]
    chosen = {t: collected[key][t] for t in missing}
    train_reward_heads(
        model, data_dir, head_root, config, missing, progress, chosen, held_out=held_out
    )


def _head_tasks(
    model: Any, data_dir: str | Path, config: RewardTrainConfig, held_out: tuple[Path, ...]
) -> list[str]:
    """Every task whose windows heads can be trained on: the data's test split's and the
    held-out data's."""
    test_fraction = model.config.train.test_fraction
    return sorted(head_episodes(data_dir, config.window, test_fraction, held_out))


def _check_heads_fit(
    loaded: dict[str, RewardHead], head_root: Path, representation: str, held_out: tuple[Path, ...]
) -> None:
    """Refuse a head that reads a per-frame representation the model lacks, or that was
    trained with other held-out data (its test episodes come from that pool)."""
    for task, head in loaded.items():
        why = inputs_mismatch(head.config.inputs, representation)
        if why is not None:
            raise UsageError(
                f"--heads: the head {head_root / task} reads {head.config.inputs}, but {why}"
            )
    given = [str(Path(p).resolve()) for p in held_out]
    for task, head in loaded.items():
        recorded = head.config.metadata.get("held_out_data") or []
        if recorded != given:
            raise UsageError(
                f"--held-out-data: the head {head_root / task} was trained with held-out data "
                f"{recorded or 'none'}, not {given or 'none'}; its test episodes are drawn from "
                "that pool, so score it with the same --held-out-data"
            )


def _score_head(head: RewardHead, sequences: RewardSequences, seed: int) -> TaskRewardScore:
    """The head's normalised MSE on the test windows of its own split of ``sequences``."""
    defaults = RewardTrainConfig()
    fraction = head.config.metadata.get("train_fraction", defaults.train_fraction)
    split = head.config.metadata.get("split", "windows")
    _, test = split_sequences(sequences, fraction, seed, split)
    overall, per_step, ci95 = normalized_mse(
        predict(head, test.hidden, test.keypoints), test.reward, head.config.reward_mean
    )
    constant = bool(np.isnan(overall))
    return TaskRewardScore(
        normalized_mse=None if constant else overall,
        per_step=None if constant else per_step.tolist(),
        ci95=None if constant else ci95.tolist(),
        constant_rewards=constant,
        test_windows=len(test),
        split=split,
        mean_train_reward=head.config.reward_mean,
        inputs=head.config.inputs,
        validation_normalized_mse=head.config.metadata.get("validation_normalized_mse"),
    )


def _collect(
    model: Any,
    data_dir: str | Path,
    key: tuple,
    tasks: list[str] | None,
    progress: bool,
    held_out: tuple[Path, ...] = (),
) -> dict[str, RewardSequences]:
    window, stride, max_windows, seed = key
    return collect_reward_sequences(
        model,
        data_dir,
        window=window,
        stride=stride,
        max_windows=max_windows,
        tasks=tasks,
        seed=seed,
        progress=progress,
        held_out=held_out,
    )


def _tasks_with_heads(root: Path, tasks: list[str] | None) -> list[str]:
    if not root.is_dir():
        return []
    found = sorted(p.name for p in root.iterdir() if (p / "head.json").exists())
    return [t for t in found if not tasks or t in tasks]
