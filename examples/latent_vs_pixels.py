"""Same agent, same budget: the world model's latent state vs raw pixels.

    python examples/latent_vs_pixels.py --run runs/dmcs --task cartpole-balance --timesteps 20000

Trains PPO twice on the same task with the same number of environment steps -- once on
LatentVecEnv observations (an MLP), once on the frames themselves (SB3's NatureCNN when
the frames are at least 36x36, else an MLP on the flattened pixels) -- then plays a few
episodes with each and prints both mean returns.
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import keypoint_wm
from keypoint_wm.envs import DMCPixelEnv, LatentVecEnv, parse_task_name

parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
parser.add_argument("--run", required=True)
parser.add_argument("--task", default="cartpole-balance")
parser.add_argument("--timesteps", type=int, default=20_000)
parser.add_argument("--envs", type=int, default=4)
parser.add_argument("--action-repeat", type=int, default=2)
parser.add_argument("--time-limit", type=float, help="seconds of simulated time per episode")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

model = keypoint_wm.load(args.run, device="cpu")
size = model.config.model.image_size
domain, task = parse_task_name(args.task)
task_kwargs = {"time_limit": args.time_limit} if args.time_limit else None


def pixel_env() -> DMCPixelEnv:
    return DMCPixelEnv(
        domain, task, size=size, action_repeat=args.action_repeat, task_kwargs=task_kwargs
    )


def train_and_play(venv, policy: str) -> float:
    n_steps = max(8, min(256, args.timesteps // args.envs))
    agent = PPO(policy, venv, n_steps=n_steps, batch_size=min(64, n_steps), seed=args.seed)
    agent.learn(total_timesteps=args.timesteps)
    returns = np.zeros(args.envs)
    finished = np.zeros(args.envs, bool)
    obs = venv.reset()
    while not finished.all():
        action, _ = agent.predict(obs, deterministic=True)
        obs, reward, done, _ = venv.step(action)
        returns += np.where(finished, 0.0, reward)
        finished |= done
    venv.close()
    return float(returns.mean())


latent = LatentVecEnv(make_vec_env(pixel_env, n_envs=args.envs, seed=args.seed), model)
latent_return = train_and_play(latent, "MlpPolicy")

pixels = make_vec_env(pixel_env, n_envs=args.envs, seed=args.seed)
pixel_return = train_and_play(pixels, "CnnPolicy" if size >= 36 else "MlpPolicy")

print(f"budget: {args.timesteps} env steps each on {args.task}")
print(f"latent-state return: {latent_return:.2f}")
print(f"raw-pixel return:    {pixel_return:.2f}")
