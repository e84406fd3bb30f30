"""r3d-predict and r3d-features: trained 3D CNNs on any video, as labels or as
timestamp-aligned features. This package uses both preprocess (decoding raw videos) and
training (models, windows, transforms, stores), so training never imports preprocess;
nothing imports it (docs/features.md)."""
