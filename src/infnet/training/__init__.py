"""Losses, configs and the trainer."""
