"""Geometry of motion: transforms, parameters, prescriptions, calibration, motion, augmented k-space."""
