"""Where a run's worker executes: `local` (a subprocess the supervisor spawns) or `slurm` (a batch job).

Torch-free: the supervisor imports it (the CLI and the TUI check Slurm options with
engine/control/slurm_options.py instead). `base` holds the interface and the cluster-state vocabulary;
`slurm` drives sbatch/squeue/scontrol/sacct/scancel with argv lists. BackendError lives in
engine/control/errors.py.
"""
