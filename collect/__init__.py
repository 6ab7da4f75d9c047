"""Data collection: random-action DeepMind Control Suite rollouts written as episode files."""
