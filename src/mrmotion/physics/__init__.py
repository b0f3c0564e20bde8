"""Physics of motion in MRI: sampling, coil maps, motion models, NUFFT operators and k-space simulation."""
