"""Config-driven runs: a pipeline file -> a matrix of steps, cached by content."""
