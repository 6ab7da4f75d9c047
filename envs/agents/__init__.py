"""Agents on the world model's latent state: ``keypoint-wm evaluate agents``.

The same Stable-Baselines3 agent (PPO or SAC), with the same real env-step budget and
several agent seeds, learns a task the world model was trained on from five views of it
(:mod:`~keypoint_wm.envs.agents.variants`): a uniform random policy, the true
low-dimensional state, the raw frames, the model's latent state, and imagination alone
(``DreamEnv``). Every agent is scored on the real task; the report gives each variant's final
return (mean ± 95% CI over seeds) and its learning curve.

With a trained run (``runs/dmcs``) and MuJoCo rendering::

    from keypoint_wm.envs.agents import AgentEvalConfig, run_agents
    import keypoint_wm
    config = AgentEvalConfig(tasks=("cartpole-balance",), algo="ppo", steps=50_000, seeds=3)
    report = run_agents(keypoint_wm.load("runs/dmcs"), config, out="agents/cartpole")

This package sits with :mod:`keypoint_wm.envs.latent` (docs/design.md, "Layers"): it needs
dm_control, Stable-Baselines3 and a trained model.
"""

from keypoint_wm.envs.agents.config import ALGOS, FEATURES, VARIANTS, AgentEvalConfig, Unit
from keypoint_wm.envs.agents.report import build_report, format_report, plot_report, t_interval
from keypoint_wm.envs.agents.runner import run_agents, run_unit
from keypoint_wm.envs.agents.state import StateEnv

__all__ = [
    "ALGOS",
    "FEATURES",
    "VARIANTS",
    "AgentEvalConfig",
    "StateEnv",
    "Unit",
    "build_report",
    "format_report",
    "plot_report",
    "run_agents",
    "run_unit",
    "t_interval",
]
