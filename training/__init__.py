"""Training, fine-tuning, validation and inference of 3D CNNs on r3d stores."""
