"""Train a Stable-Baselines3 agent on a world model's latent state.

    python examples/sb3_agent.py --run runs/dmcs --task cheetah-run --algo sac --timesteps 20000

The pixel envs run as one SB3 VecEnv; LatentVecEnv turns their frames into the model's
latent state (keypoints + GRU state) with one batched model call per step. After training,
the agent plays one episode per env and the mean return is printed.
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

import keypoint_wm
from keypoint_wm.envs import DMCPixelEnv, LatentVecEnv, parse_task_name

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--run", required=True, help="run directory written by keypoint-wm train")
parser.add_argument("--task", default="cheetah-run")
parser.add_argument("--algo", choices=("ppo", "sac"), default="ppo")
parser.add_argument("--timesteps", type=int, default=20_000)
parser.add_argument("--envs", type=int, default=4)
parser.add_argument("--action-repeat", type=int, default=2)
parser.add_argument("--time-limit", type=float, help="seconds of simulated time per episode")
parser.add_argument("--features", default="both", choices=("keypoints", "hidden", "both"))
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

# 1. The world model and the pixel envs it was trained on (same image size).
model = keypoint_wm.load(args.run, device="cpu")
domain, task = parse_task_name(args.task)
task_kwargs = {"time_limit": args.time_limit} if args.time_limit else None


def pixel_env() -> DMCPixelEnv:
    return DMCPixelEnv(
        domain,
        task,
        size=model.config.model.image_size,
        action_repeat=args.action_repeat,
        task_kwargs=task_kwargs,
    )


# 2. Their latent state, batched over the envs.
venv = LatentVecEnv(
    make_vec_env(pixel_env, n_envs=args.envs, seed=args.seed), model, features=args.features
)
print(f"observation: {venv.observation_space.shape[0]} latent features ({args.features})")

# 3. An agent on top, as on any vector observation.
if args.algo == "ppo":
    n_steps = max(8, min(256, args.timesteps // args.envs))
    agent = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=min(64, n_steps), seed=args.seed)
else:
    agent = SAC("MlpPolicy", venv, learning_starts=min(1000, args.timesteps // 2), seed=args.seed)
agent.learn(total_timesteps=args.timesteps, progress_bar=False)

# 4. One deterministic episode per env.
returns = np.zeros(args.envs)
finished = np.zeros(args.envs, bool)
obs = venv.reset()
while not finished.all():
    action, _ = agent.predict(obs, deterministic=True)
    obs, reward, done, _ = venv.step(action)
    returns += np.where(finished, 0.0, reward)
    finished |= done
print(f"{args.algo} on {args.task} latent state: mean return {returns.mean():.2f}")
venv.close()
