"""The networks: the iCNN (stage 1 K and the part models K_i), the STN localiser L, and
STN-iCNN, the module that joins them with the sampler (forward for training, parse for
inference)."""
