"""Gymnasium side: DeepMind Control Suite pixel environments and their registration."""
