"""Yardstick: the shared contracts and plumbing every service uses."""
