"""What a job declares: the model and YAML job files read with positions. Pure."""
