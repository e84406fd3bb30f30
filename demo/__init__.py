"""r3d-demo: the whole pipeline on a small dataset the project generates itself."""
