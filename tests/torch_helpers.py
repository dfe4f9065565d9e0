"""Shared helpers for the PyTorch-twin parity tests."""

import torch
from torch import nn as tnn


def randomise_batchnorm(module: tnn.Module, seed: int) -> tnn.Module:
    """Non-trivial BN affine parameters and running statistics, so parity tests see them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module
