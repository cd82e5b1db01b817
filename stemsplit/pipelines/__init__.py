"""Pipelines: one entry module per subcommand; the CLI calls these and nothing else."""
