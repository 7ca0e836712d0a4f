"""Training shared by the tasks that train: the one step (step), its budget and schedule
(schedule), one run's steps (loop) and divergence as data (divergence)."""
