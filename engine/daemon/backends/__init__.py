"""Where a run's worker executes: `local` (a subprocess the supervisor spawns) or `slurm` (a batch job).

Torch-free, like engine/control: the supervisor, the CLI and the TUI import it. `base` holds the interface
and the cluster-state vocabulary; `slurm` drives sbatch/squeue/scontrol/sacct/scancel with argv lists.
"""

from engine.daemon.backends.base import Backend, BackendError, ClusterState, map_slurm_state

__all__ = ["Backend", "BackendError", "ClusterState", "map_slurm_state"]
