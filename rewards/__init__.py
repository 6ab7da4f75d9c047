"""Reward-prediction heads on the world model's latent state."""
