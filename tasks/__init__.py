"""One module per DVC stage: read the stage's params, call videor1, write outputs and metrics."""
