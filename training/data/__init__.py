"""The data path: everything that turns a store and an annotation file into clips, and nothing
of a training run. Layers, each importing only those before it: errors <- files <- catalog
(catalogfiles, derive) <- stores <- videos; decode, region, sampling, transforms, order and
samples beside them; datasets on top. Modules are imported when used (`python -m
training.data.catalog` and the commands' --help stay free of torch); the public names are
re-exported by the training package."""
