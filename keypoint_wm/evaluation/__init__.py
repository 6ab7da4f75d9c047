"""Evaluation: the paper's tracking, video and downstream measures."""
