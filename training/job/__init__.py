"""The run machinery of r3d-train: options, builders (model, optimizer, scheduler, data
loaders), the train state that saves and resumes, the epoch loop, logs, evaluation and
distributed helpers. It reads clips through training.data and builds networks with
training.models; training.cli is its command."""
