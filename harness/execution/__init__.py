"""Where evaluations run: the cached runner, local (fork-server or fresh process), in-process and
Slurm executors, the worker entry point, worker environment scrubbing, and progress display."""
