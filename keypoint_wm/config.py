"""Run configuration: :class:`TrainConfig`, :class:`RunConfig`, YAML files and ``--set``.

A run is fully described by a :class:`RunConfig`: the model's hyperparameters
(:class:`~keypoint_wm.model.config.ModelConfig`), the training schedule
(:class:`TrainConfig`), the preset it started from and the seed. Presets live in
:mod:`keypoint_wm.presets`; a YAML file (``--config``) and ``--set key=value`` overrides go
on top, in that order.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_wm.choices import PRECISION_CHOICES as PRECISIONS
from keypoint_wm.differences import config_differences as config_differences
from keypoint_wm.errors import DataError, KeypointWMError, UsageError, not_found
from keypoint_wm.model.config import ModelConfig

REFERENCE_FRAMES = ("first", "other_episode")
"""What the reconstructor draws on (:attr:`TrainConfig.reference_frame`)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and schedules, stated in absolute steps for the preset's budget.

    The paper (S1.2, S1.3): Adam 1e-3 halved every 3e4 steps, KL weight annealed linearly
    from 0 to beta over 2.5e4 steps, scheduled sampling ramped linearly over training to a
    final probability of the model's own samples of 1.0 (observed) and 0.5 (predicted),
    batch 32, 1e5 steps.

    Attributes:
        steps: total number of training steps (``--steps``).
        batch_size: sequences per step (per process under torchrun).
        learning_rate: initial Adam learning rate.
        lr_halving_steps: the learning rate halves every this many steps.
        kl_annealing_steps: KL weight ramps linearly from 0 to ``kl_beta`` over these steps.
        scheduled_sampling_steps: probability of feeding the model's own samples ramps
            linearly from 0 to its final values over these steps.
        own_sample_prob_observed: final probability for observed steps.
        own_sample_prob_predicted: final probability for predicted steps.
        keypoint_width_start: if > 0, the reconstructor's Gaussian blobs start this wide and
            narrow linearly to ``model.keypoint_width`` over ``keypoint_width_steps`` (a
            curriculum, not in the paper: wide blobs let the image loss pull keypoints
            from further away while they are still searching for objects).
        keypoint_width_steps: length of that curriculum in steps.
        motion_prior_scale: initial weight of the motion-prior term (heatmaps pulled onto
            image regions that differ from the sequence's median frame; not in the paper),
            decaying linearly to 0 over ``motion_prior_steps``: it starts every keypoint
            on a moving object, where the image loss can take over (docs/design.md,
            "Known pitfall").
        motion_prior_steps: length of that curriculum in steps.
        motion_prior_final: weight of the term after the decay (0: the term is gone after
            ``motion_prior_steps``; a small constant keeps pulling unused keypoints onto
            objects that no keypoint covers yet, with ``model.motion_prior="coverage"``).
        grad_clip_norm: global gradient-norm clipping (0 disables).
        precision: ``"bf16"`` runs the image networks in bf16 autocast with channels_last
            (dynamics and keypoint maths stay fp32); ``"channels_last"`` channels_last in fp32;
            ``"fp32"`` is plain eager; ``"auto"`` picks bf16 on GPUs and CPUs with native
            bf16 kernels (AVX512-BF16/AMX), else channels_last.
        reference_frame: the frame the reconstructor draws on, next to the keypoints:
            ``"first"`` (the paper: frame 1 of the window, which holds the scene's static
            appearance) or ``"other_episode"`` (not in the paper: a random frame of another
            episode of the same task, so what differs between episodes -- a goal or
            target placed per episode, the scene under a tracking camera -- must come
            through the keypoints; with ``"first"`` a static target is copied from frame 1
            and no keypoint, hence no downstream head or agent, sees it).
        data_workers: data-loader worker processes.
        test_fraction: fraction of episode files held out (never trained on) for evaluation
            (``evaluate`` reports this split); a dataset whose files name their split in
            their metadata is split by it instead.
        validation_fraction: fraction of the remaining (training) files held out as the
            validation split, by a second, independent path hash: the world model never
            trains on them, the in-training probe scores them, and every choice of knobs or
            step counts is made on them (:class:`~keypoint_wm.data.sequences.EpisodeIndex`).
        log_every, image_every, checkpoint_every: intervals in steps.
        probe_every: run the held-out tracking probe (keypoints -> ground-truth positions,
            R^2 per object) every this many steps when the data has positions; 0 = never.
    """

    steps: int = 100_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_halving_steps: int = 30_000
    kl_annealing_steps: int = 25_000
    scheduled_sampling_steps: int = 100_000
    own_sample_prob_observed: float = 1.0
    own_sample_prob_predicted: float = 0.5
    keypoint_width_start: float = 0.0
    keypoint_width_steps: int = 0
    motion_prior_scale: float = 0.0
    motion_prior_steps: int = 0
    motion_prior_final: float = 0.0
    grad_clip_norm: float = 10.0
    precision: str = "auto"
    reference_frame: str = "first"
    data_workers: int = 2
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    log_every: int = 50
    image_every: int = 1000
    checkpoint_every: int = 1000
    probe_every: int = 0

    def __post_init__(self) -> None:
        if self.reference_frame not in REFERENCE_FRAMES:
            raise ValueError(
                f"train.reference_frame must be one of {REFERENCE_FRAMES}, "
                f"got {self.reference_frame!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in (
            "steps",
            "batch_size",
            "lr_halving_steps",
            "log_every",
            "image_every",
            "checkpoint_every",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.motion_prior_scale < 0 or self.motion_prior_final < 0:
            raise ValueError("train.motion_prior_scale and train.motion_prior_final must be >= 0")
        if not self.learning_rate > 0:  # NaN too
            raise ValueError(f"train.learning_rate must be > 0, got {self.learning_rate}")
        if not self.grad_clip_norm >= 0:
            raise ValueError(
                f"train.grad_clip_norm must be >= 0 (0: off), got {self.grad_clip_norm}"
            )
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"train.test_fraction must be in [0, 1), got {self.test_fraction}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"train.validation_fraction must be in [0, 1), got {self.validation_fraction}"
            )

    def learning_rate_at(self, step: int) -> float:
        return self.learning_rate * 0.5 ** (step // self.lr_halving_steps)

    def kl_scale_at(self, step: int, beta: float) -> float:
        if self.kl_annealing_steps <= 0:
            return beta
        return beta * min(1.0, step / self.kl_annealing_steps)

    def keypoint_width_at(self, step: int, final: float) -> float | None:
        """The curriculum's blob width at ``step``; None when there is no curriculum."""
        if self.keypoint_width_start <= 0:
            return None
        if self.keypoint_width_steps <= 0 or step >= self.keypoint_width_steps:
            return final
        frac = step / self.keypoint_width_steps
        return self.keypoint_width_start + frac * (final - self.keypoint_width_start)

    def motion_prior_scale_at(self, step: int) -> float:
        """The motion-prior weight at ``step`` (linear decay to ``motion_prior_final``)."""
        if self.motion_prior_scale <= 0 or step >= self.motion_prior_steps:
            return self.motion_prior_final
        frac = step / self.motion_prior_steps
        return self.motion_prior_scale + frac * (self.motion_prior_final - self.motion_prior_scale)

    def own_sample_probs_at(self, step: int) -> tuple[float, float]:
        ramp = (
            1.0
            if self.scheduled_sampling_steps <= 0
            else min(1.0, step / self.scheduled_sampling_steps)
        )
        return ramp * self.own_sample_prob_observed, ramp * self.own_sample_prob_predicted


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (saved as ``RUN/config.json``).

    ``data`` records the training data, filled in by ``keypoint-wm train``: ``root`` (its
    absolute path), ``fingerprint``, ``tasks`` and ``action_repeat`` (physics control
    steps per agent step the episodes were collected with; None when the data does not say;
    absent from runs trained before it was recorded).
    """

    preset: str
    model: ModelConfig
    train: TrainConfig
    seed: int = 0
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "seed": self.seed,
            "model": self.model.to_dict(),
            "train": dataclasses.asdict(self.train),
            "data": dict(self.data),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        unknown = sorted(set(data) - {"preset", "seed", "model", "train", "data"})
        if unknown:
            raise ValueError(f"unknown run config key(s): {', '.join(unknown)}")
        for section in ("model", "train", "data"):
            value = data.get(section, {})
            if not isinstance(value, dict):
                raise ValueError(
                    f"{section!r} must be an object of settings, got {type(value).__name__} "
                    f"{value!r}"
                )
        return cls(
            preset=data.get("preset", "custom"),
            seed=int(data.get("seed", 0)),
            model=ModelConfig.from_dict(data.get("model", {})),
            train=_train_from_dict(data.get("train", {})),
            data=dict(data.get("data", {})),
        )

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply ``{"model.num_keypoints": 16, "train.steps": 10, "seed": 1, ...}``."""
        nested = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if not key:
                if section in ("seed", "preset"):
                    nested[section] = coerce_setting(section, value)
                    continue
                section, key = _section_of(section), section
            if section not in ("model", "train", "data"):
                raise UsageError(f"--set {dotted}: expected model.KEY, train.KEY or seed")
            nested[section][key] = coerce_setting(f"{section}.{key}", value, dotted)
        try:
            return RunConfig.from_dict(nested)
        except KeypointWMError:
            raise
        except ValueError as error:  # a value the config rejects, e.g. train.steps=0
            raise UsageError(f"--set/--config: {error}") from None


def recorded_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded config (its ``config.json`` as a dict), checked complete, with what it
    predates derived from what it recorded: the one place where a saved run's config is
    completed.

    A run records its whole config, every model and train setting. One setting is derived
    when missing: ``model.action_conditioned`` (recorded since it moved from the presets
    into the model's config) is whether the run trained with actions, ``model.action_size >
    0`` (training sets the action size from the data exactly when the model is
    action-conditioned). Any other missing setting is an error: a default could differ from
    what the run trained with.

    Raises:
        ValueError: in one line, naming the settings the run does not record.

    >>> saved = RunConfig("custom", ModelConfig(action_size=6), TrainConfig()).to_dict()
    >>> del saved["model"]["action_conditioned"]
    >>> recorded_settings(saved)["model"]["action_conditioned"]
    True
    >>> del saved["train"]["validation_fraction"]
    >>> recorded_settings(saved)
    Traceback (most recent call last):
    ...
    ValueError: the run does not record train.validation_fraction (saved by an earlier version of keypoint-wm); add the value it trained with
    """
    model, train = saved.get("model", {}), saved.get("train", {})
    if not isinstance(model, dict) or not isinstance(train, dict):
        return saved  # RunConfig.from_dict names the section
    if "action_conditioned" not in model and "action_size" in model:
        model = {**model, "action_conditioned": bool(model["action_size"])}
    missing = [f"model.{f.name}" for f in dataclasses.fields(ModelConfig) if f.name not in model]
    missing += [f"train.{f.name}" for f in dataclasses.fields(TrainConfig) if f.name not in train]
    if missing:
        values = "the values" if len(missing) > 1 else "the value"
        raise ValueError(
            f"the run does not record {', '.join(missing)} (saved by an earlier version of "
            f"keypoint-wm); add {values} it trained with"
        )
    return {**saved, "model": model}


def _train_from_dict(data: dict[str, Any]) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown TrainConfig key(s): {', '.join(unknown)}; valid keys are: {', '.join(sorted(names))}"
        )
    return TrainConfig(**data)


def _section_of(key: str) -> str:
    """The section of a bare ``--set`` key (``num_keypoints`` -> ``model``)."""
    in_model = key in {f.name for f in dataclasses.fields(ModelConfig)}
    in_train = key in {f.name for f in dataclasses.fields(TrainConfig)}
    if in_model and in_train:
        raise UsageError(f"--set {key} is ambiguous; write model.{key} or train.{key}")
    if not (in_model or in_train):
        raise UsageError(f"--set {key}: no such model or train setting")
    return "model" if in_model else "train"


_KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _setting_type(dotted: str) -> Any:
    """The annotated type of ``seed``, ``preset``, ``model.KEY`` or ``train.KEY``; None when
    there is no such typed setting (``data.*``, unknown keys: from_dict names those)."""
    if dotted in ("seed", "preset"):
        return typing.get_type_hints(RunConfig)[dotted]
    section, _, key = dotted.partition(".")
    owner = {"model": ModelConfig, "train": TrainConfig}.get(section)
    return typing.get_type_hints(owner).get(key) if owner is not None else None


def coerce_setting(dotted: str, value: Any, shown: str | None = None, source: str = "--set") -> Any:
    """``value`` as the type of the setting ``dotted``, or a UsageError naming both.

    Integers accept integral numbers (``1e5`` as text, ``2.0``); numbers accept integers
    and numeric text (YAML reads ``1e-3`` as a string); booleans accept only true/false;
    an optional setting (``X | None``) accepts null/none. ``shown`` is the key as the user
    wrote it (a bare ``--set num_keypoints=...``); ``source`` where it came from (the flag,
    or ``--config FILE:``). Settings without a type pass unchanged.

    >>> coerce_setting("train.learning_rate", "1e-3"), coerce_setting("train.steps", 2.0)
    (0.001, 2)
    >>> coerce_setting("model.num_keypoints", 2.5)
    Traceback (most recent call last):
    ...
    keypoint_wm.errors.UsageError: --set model.num_keypoints=2.5: expected an integer (model.num_keypoints is int)
    """
    hint = _setting_type(dotted)
    if hint is None:
        return value
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in options and (
        value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
    ):
        return None
    wanted = next(t for t in options if t is not type(None))
    coerced = _coerce(value, wanted)
    if coerced is _INVALID:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in options)
        shown_value = value if isinstance(value, str) else json.dumps(value)
        raise UsageError(
            f"{source} {shown or dotted}={shown_value}: expected {_KINDS.get(wanted, wanted)} "
            f"({dotted} is {names})"
        )
    return coerced


_INVALID = object()


def _coerce(value: Any, wanted: type) -> Any:
    if wanted is bool:
        return value if isinstance(value, bool) else _INVALID
    if wanted is str:
        return value if isinstance(value, str) else _INVALID
    if isinstance(value, bool) or wanted not in (int, float):
        return _INVALID
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return _INVALID
    if not isinstance(number, (int, float)):
        return _INVALID
    if wanted is float:
        return float(number)
    if isinstance(number, float):
        return int(number) if number.is_integer() else _INVALID
    return number


def parse_set_arguments(items: list[str]) -> dict[str, Any]:
    """``["model.num_keypoints=16", "train.precision=fp32"]`` -> typed dict (YAML scalars).

    Each value is checked against its setting's type here (:func:`coerce_setting`), so a
    bad ``--set`` is refused even when another flag (``--steps``) replaces it later.
    """
    import yaml

    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text  # not YAML: the raw text, checked as a string
        bare = "." not in key and key not in ("seed", "preset")
        dotted = f"{_section_of(key)}.{key}" if bare else key
        overrides[key] = coerce_setting(dotted, value, shown=key)
    return overrides


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML/JSON file ``{model: {...}, train: {...}, seed: N}`` as dotted overrides."""
    import yaml

    path = Path(path)
    if not path.is_file():  # a flag naming no file is a usage error, as for --data and --run
        what = "is not a file" if path.exists() else not_found(path)
        raise UsageError(f"--config {path} {what}; expected a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())  # YAML's messages span lines; keep one
        raise DataError(f"--config {path}: cannot read ({reason})") from error
    if not isinstance(data, dict):
        raise DataError(f"--config {path}: expected a mapping with model/train sections")
    overrides: dict[str, Any] = {}
    for section, values in data.items():
        if isinstance(values, dict):
            overrides.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            overrides[section] = values
    source = f"--config {path}:"
    return {key: coerce_setting(key, value, source=source) for key, value in overrides.items()}
