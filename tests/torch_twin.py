"""Our own PyTorch statement of the authors' networks and inference path, from the
facts in docs/authors-code.md: the iCNN (``FaceModel``), the stage-2 part models
(``Stage2Model``), the ResNet-18 localiser, the paper's VGG-9 localiser (as this
package builds it, model/localizer.py), and the whole pipeline (:class:`TorchPipelineTwin`:
stage 1, softmax, localiser, crop on the padded canvas with ``grid_sample``, the part
models with the right brow/eye through the mirrored left model, paste-back with the
inverse theta on the full canvas, fusion, argmax) plus the authors' training losses.
State-dict names match the authors' layout (unused layers included), so converters and
parity checks can use them.

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
        # node n-1's unused output conv: 2 c_{n-1} inputs (64 for the authors' widths)
        outs = [chs[i] + chs[i + 1] if i < n - 1 else 2 * chs[-1] for i in range(n)]
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



THETA_MASK = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


class TorchVGG9Twin(tnn.Module):
    """Our torch statement of the paper's VGG-9 localiser as model/localizer.py builds it:
    8 x [conv3x3/p1 + BN + ReLU], average pooling 3/2/1 over valid pixels after every two
    convs, the features flattened in (h, w, c) order, one linear layer giving (sx, sy,
    tx, ty) per part. Returns theta (N, parts, 2, 3)."""

    def __init__(self, channels=(32, 32, 64, 64, 128, 128, 256, 256), input_size=128,
                 in_channels=9, num_parts=6):
        super().__init__()
        self.num_parts = num_parts
        ins = (in_channels,) + tuple(channels[:-1])
        self.convs = tnn.ModuleList(tnn.Conv2d(i, o, 3, 1, 1) for i, o in zip(ins, channels))
        self.bns = tnn.ModuleList(tnn.BatchNorm2d(o) for o in channels)
        side = input_size
        for _ in range(len(channels) // 2):
            side = (side + 2 - 3) // 2 + 1
        self.fc = tnn.Linear(side * side * channels[-1], 4 * num_parts)

    def forward(self, x):
        for k, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = torch.relu(bn(conv(x)))
            if k % 2 == 1:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        free = self.fc(x.permute(0, 2, 3, 1).flatten(1)).view(-1, self.num_parts, 4)
        sx, sy, tx, ty = free.unbind(-1)
        zero = torch.zeros_like(sx)
        return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], -2)


# --------------------------------------------------------------------------- pipeline


def affine_crop(canvas, theta, size):
    """The authors' crop: canvas (N, C, H, W), theta (N, P, 2, 3) -> (N, P, C, size, size);
    affine grid + bilinear grid_sample, zero padding, align_corners=True."""
    n, p = theta.shape[:2]
    c = canvas.shape[1]
    grid = F.affine_grid(theta.reshape(n * p, 2, 3), [n * p, c, size, size], align_corners=True)
    src = canvas[:, None].expand(n, p, *canvas.shape[1:]).reshape(n * p, *canvas.shape[1:])
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.view(n, p, c, size, size)


PART_CHANNELS = ((1,), (2,), (3,), (4,), (5,), (6, 7, 8))
"""The 9-class channels each of the six parts predicts (after its background)."""


def crop_labels(canvas_onehot, theta, size):
    """The authors' label crops: the 9-channel canvas labels (N, 9, H, W) sampled with
    nearest at theta, each part's [1 - sum(fg), fg...], argmax -> six (N, size, size)."""
    n, p = theta.shape[:2]
    grid = F.affine_grid(theta.reshape(n * p, 2, 3), [n * p, 9, size, size], align_corners=True)
    src = canvas_onehot[:, None].expand(n, p, *canvas_onehot.shape[1:]).reshape(n * p, *canvas_onehot.shape[1:])
    crops = F.grid_sample(src, grid, mode="nearest", padding_mode="zeros",
                          align_corners=True).view(n, p, 9, size, size)
    out = []
    for k, channels in enumerate(PART_CHANNELS):
        fg = crops[:, k, list(channels)]
        out.append(torch.cat([1 - fg.sum(1, keepdim=True), fg], 1).argmax(1))
    return out


def affine_mapback(probs, theta, canvas_size):
    """The authors' paste-back and fusion: six part softmax maps (N, C_k, h, w) pasted
    with the inverse theta on the full (H, W) canvas (nearest, zeros, align_corners=True);
    background = product of the parts' 1 - paste(1 - p_bg); -> (N, 9, H, W)."""
    n = theta.shape[0]
    hc, wc = canvas_size
    sx, tx = theta[..., 0, 0], theta[..., 0, 2]
    sy, ty = theta[..., 1, 1], theta[..., 1, 2]
    zero = torch.zeros_like(sx)
    inverse = torch.stack([torch.stack([1 / sx, zero, -tx / sx], -1),
                           torch.stack([zero, 1 / sy, -ty / sy], -1)], -2)
    background = torch.ones(n, 1, hc, wc)
    foreground = []
    for k, p in enumerate(probs):
        maps = torch.cat([1 - p[:, :1], p[:, 1:]], 1)
        grid = F.affine_grid(inverse[:, k], [n, maps.shape[1], hc, wc], align_corners=True)
        pasted = F.grid_sample(maps, grid, mode="nearest", padding_mode="zeros", align_corners=True)
        background = background * (1 - pasted[:, :1])
        foreground.append(pasted[:, 1:])
    return torch.cat([background] + foreground, 1)


def theta_from_centers(centers, crop_size, canvas_size):
    """The authors' ground-truth theta (their eq. 21): centres (N, 6, 2) = (y, x) canvas
    pixels -> [[s, 0, -1 + 2x/(W-1)], [0, s, -1 + 2y/(H-1)]], s = (crop-1)/(W-1)."""
    s = (crop_size - 1) / (canvas_size - 1)
    y, x = centers[..., 0], centers[..., 1]
    t_x, t_y = -1 + 2 * x / (canvas_size - 1), -1 + 2 * y / (canvas_size - 1)
    full = torch.full_like(x, s)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([full, zero, t_x], -1), torch.stack([zero, full, t_y], -1)], -2)


class TorchPipelineTwin(tnn.Module):
    """The authors' inference path: ``rough`` (TorchICNNTwin(9)), ``localizer``
    (TorchResNet18Twin or TorchVGG9Twin), ``parts`` (TorchStage2Twin)."""

    def __init__(self, rough, localizer, parts, crop_size=81):
        super().__init__()
        self.rough, self.localizer, self.parts = rough, localizer, parts
        self.crop_size = crop_size

    def forward(self, rough_image, canvas, theta=None):
        """rough_image (N, 3, r, r) and canvas (N, 3, H, W) in [0, 1]; ``theta`` (canvas
        frame) replaces the localiser's (ground-truth crops). Returns a dict."""
        out = {}
        if theta is None:
            out["rough_logits"] = self.rough(rough_image)
            theta = self.localizer(torch.softmax(out["rough_logits"], 1))
        out["theta"] = theta
        out["patches"] = affine_crop(canvas, theta, self.crop_size)
        out["part_logits"] = self.parts(out["patches"])
        probs = [torch.softmax(z, 1) for z in out["part_logits"]]
        out["probs"] = affine_mapback(probs, theta, canvas.shape[2:])
        out["labels"] = out["probs"].argmax(1)
        return out


# --------------------------------------------------------------------------- training


def part_loss(part_logits, part_labels):
    """The authors' stage-2 loss: the SUM over the six parts of softmax CE (mean over pixels)."""
    return sum(F.cross_entropy(z, t) for z, t in zip(part_logits, part_labels))


def smooth_l1_theta(theta, target):
    """SmoothL1 (beta 1) averaged over all N*6*2*3 entries, masked zeros included."""
    return F.smooth_l1_loss(theta, target)
