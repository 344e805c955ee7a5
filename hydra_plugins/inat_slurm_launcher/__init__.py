"""inat's Hydra launcher for Slurm sweeps (Hydra finds launchers only in `hydra_plugins`)."""
