"""``python -m bench pressure``: Soniq under steady load while something hurts the database
(a pinned xmin horizon, long REPEATABLE READ readers, 1.5x overload, killed backends, 300
idle connections), phase by phase: warm-up, clean, stress, recovery. See cli.py."""
