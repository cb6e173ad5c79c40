"""GLUE for Pseudo-KD: the task registry, offline/Hub loading, local metrics and leaderboard submissions."""
