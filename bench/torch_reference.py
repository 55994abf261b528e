"""PyTorch side of `npm run bench -- train-step`: the same reference net, one thread.

Prints one JSON line: {"torchMsPerStep": median ms of `--steps` SGD steps after warm-up}.
Run with Debian's /usr/bin/python3 (python3-torch); the bench calls it in the same run.
"""
import argparse, json, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def reference_net(classes: int) -> nn.Module:
    layers, c_in = [], 3
    for c_out, stride in [(32, 2), (64, 2), (128, 2), (128, 1)]:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.b(self.a(x)) + self.shortcut(x))


def resnet(classes: int, width: int, blocks: list, stem_stride: int) -> nn.Module:
    """models/resnet.ts's ResNet: a 3x3 stem, then basic blocks per stage at width * 2^stage."""
    layers = [nn.Conv2d(3, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    c_in = width
    for stage, count in enumerate(blocks):
        c_out = width * 2**stage
        for i in range(count):
            layers.append(BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
            c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes))


# models/encoder-spec.ts's presets: `slim` (stem 3x3/2 -> 32; one block per stage at 32, 64, 128) and CIFAR-style ResNet-18.
NETS = {"resnet": lambda c: resnet(c, 32, [1, 1, 1], 2), "resnet18": lambda c: resnet(c, 64, [2, 2, 2, 2], 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--net", choices=["reference", *NETS], default="reference")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = reference_net(10) if a.net == "reference" else NETS[a.net](10)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x = torch.rand(a.batch, 3, a.size, a.size)
    y = torch.arange(a.batch) % 10
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"torchMsPerStep": statistics.median(times), "net": a.net, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
