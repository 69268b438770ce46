"""Run folders and sweeps into one tidy table: discovering and loading them (load), a run's identity from its
config or the sweep layout (identity), runs that repeat another (repeats), the task groups of the figures
(task_groups), and a synthetic results folder with known returns (synthetic).

Imports analysis.errors and iqrl's task lists and run-folder names; no other room of analysis/."""
