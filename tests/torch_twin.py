"""Our own PyTorch statement of the authors' networks, from the facts in
docs/authors-code.md: the iCNN (``FaceModel``), the stage-2 part models
(``Stage2Model``) and the ResNet-18 localiser. State-dict names match the authors'
layout (unused layers included), so converters and parity checks can use them.

Shared by the parity tests and the framework benchmarks (experiments/ puts tests/ on
``sys.path`` to import it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn as tnn


class _TwinNode(tnn.Module):
    def __init__(self, in_ch, ch, out_in, k):
        super().__init__()
        self.conv_node = tnn.Conv2d(ch, ch, k, 1, k // 2)
        self.conv_node_batchnorm = tnn.BatchNorm2d(ch)
        self.inter_conv_node = tnn.Conv2d(in_ch, ch, k, 1, k // 2)
        self.inter_conv_node_batchnorm = tnn.BatchNorm2d(ch)
        self.output_conv_node = tnn.Conv2d(out_in, ch, k, 1, k // 2)
        self.output_conv_node_batchnorm = tnn.BatchNorm2d(ch)


class _TwinLayer(tnn.Module):
    def __init__(self, chs, k):
        super().__init__()
        n = len(chs)
        ins = [(chs[i - 1] if i > 0 else 0) + chs[i] + (chs[i + 1] if i < n - 1 else 0)
               for i in range(n)]
        outs = [chs[i] + chs[i + 1] if i < n - 1 else 64 for i in range(n)]  # 64: authors' dummy
        self.iCNN_Nodelist = tnn.ModuleList(_TwinNode(ins[i], chs[i], outs[i], k) for i in range(n))


class TorchICNNTwin(tnn.Module):
    """Our own torch re-statement of the authors' FaceModel from docs/authors-code.md §1 (same
    state-dict names, unused layers included so the state dict matches their layout)."""

    def __init__(self, num_labels, chs=(8, 16, 24, 32), layers=3, k=5, k_last=9):
        super().__init__()
        self.input_conv = tnn.ModuleList(tnn.Conv2d(3, c, k, 1, k // 2) for c in chs)
        self.input_bnm = tnn.ModuleList(tnn.BatchNorm2d(c) for c in chs)
        self.interlink_layers = tnn.ModuleList(_TwinLayer(chs, k) for _ in range(layers))
        hid = 2 * num_labels + 8
        self.last_conv1 = tnn.Conv2d(chs[0], hid, k, 1, k // 2)
        self.last_con1_bnm = tnn.BatchNorm2d(hid)
        self.last_conv2 = tnn.Conv2d(hid, num_labels, k, 1, k // 2)
        self.last_con2_bnm = tnn.BatchNorm2d(num_labels)
        self.last_conv3 = tnn.Conv2d(num_labels, num_labels, k_last, 1, k_last // 2)
        self.last_conv3_bnm = tnn.BatchNorm2d(num_labels)

    def forward(self, x):
        xs = [x]
        for _ in range(len(self.input_conv) - 1):
            xs.append(F.max_pool2d(xs[-1], 3, 2, 1))
        f = [torch.tanh(bn(conv(xi))) for conv, bn, xi in zip(self.input_conv, self.input_bnm, xs)]
        n = len(f)
        for layer in self.interlink_layers:
            new = []
            for i, node in enumerate(layer.iCNN_Nodelist):
                parts = []
                if i > 0:
                    parts.append(F.max_pool2d(f[i - 1], 3, 2, 1))
                parts.append(f[i])
                if i < n - 1:
                    parts.append(F.interpolate(f[i + 1], size=f[i].shape[2:], mode="nearest"))
                h = torch.relu(node.inter_conv_node_batchnorm(node.inter_conv_node(torch.cat(parts, 1))))
                new.append(torch.relu(node.conv_node_batchnorm(node.conv_node(h))))
            f = new
        nodes = self.interlink_layers[-1].iCNN_Nodelist
        g = f[-1]
        for i in reversed(range(n - 1)):
            h = torch.cat([f[i], F.interpolate(g, size=f[i].shape[2:], mode="nearest")], 1)
            g = torch.tanh(nodes[i].output_conv_node_batchnorm(nodes[i].output_conv_node(h)))
        h = torch.tanh(self.last_con1_bnm(self.last_conv1(g)))
        return self.last_conv3(self.last_conv2(h))


class TorchStage2Twin(tnn.Module):
    """Our re-statement of the authors' Stage2Model: 4 iCNNs, right brow/eye mirrored."""

    def __init__(self):
        super().__init__()
        self.model = tnn.ModuleList(TorchICNNTwin(c) for c in (2, 2, 2, 4))

    def forward(self, x):  # x: (N, 6, 3, h, w)
        m = self.model
        return [m[0](x[:, 0]), torch.flip(m[0](torch.flip(x[:, 1], [3])), [3]),
                m[1](x[:, 2]), torch.flip(m[1](torch.flip(x[:, 3], [3])), [3]),
                m[2](x[:, 4]), m[3](x[:, 5])]


class _ResNetBlock(tnn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = tnn.Sequential(tnn.Conv2d(cin, cout, 1, stride, bias=False),
                                             tnn.BatchNorm2d(cout))

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class TorchResNet18Twin(tnn.Module):
    """Our own torch statement of torchvision's resnet18 layout with the authors' 9-channel
    conv1 and fc 512 -> 36 (docs/authors-code.md §2.1); torchvision itself is not importable
    here. Returns theta (N, 6, 2, 3) with the shear entries zeroed."""

    def __init__(self, num_out: int = 36):
        super().__init__()
        self.conv1 = tnn.Conv2d(9, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        for i, (cin, cout, s) in enumerate(widths, start=1):
            setattr(self, f"layer{i}", tnn.Sequential(_ResNetBlock(cin, cout, s), _ResNetBlock(cout, cout, 1)))
        self.fc = tnn.Linear(512, num_out)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        theta = self.fc(x.mean(dim=(2, 3))).view(-1, 6, 2, 3)
        mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
        return theta * mask

