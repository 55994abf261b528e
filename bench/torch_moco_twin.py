"""PyTorch twin of `densestream train --data fashion-mnist --method mocov2 --size 28 --batch 128`,
the other side of `npm run bench -- twin`.

The same task as densestream's run, as far as the two frameworks allow:
- data: Fashion-MNIST's train split from Debian's IDX files, grey expanded to RGB, a fresh
  permutation each epoch;
- views: MoCo v2's ranges, cut on the batch tensor (the GPU-style pipeline, as Kornia/DALI do):
  random resized crop (area 0.2-1, aspect 3/4-4/3, whole-pixel boxes as torchvision draws them)
  and flip as one affine grid + bilinear grid_sample per view, at half-pixel centres as
  densestream cuts them (or, with `--resample libvips`, at the offset libvips' enlargement takes,
  which densestream copied until December 2026), colour jitter (p 0.8: brightness, contrast, saturation 0.4, hue 0.1)
  and greyscale (p 0.2) as one 3x3 matrix and offset per view (densestream's colourTransform),
  Gaussian blur (p 0.5, sigma 0.1-2 scaled by size/224) as a grouped separable convolution,
  ImageNet normalisation;
- network: densestream's `slim` ResNet (stem 3x3/2 to 32, one basic block at 32, 64, 128,
  convolutions padded as TensorFlow's "same"),
  MLP head 128-256-128, momentum encoder (m 0.99), queue of 4096 keys, InfoNCE at tau 0.2,
  SGD (lr 0.05, momentum 0.9, weight decay 1e-4);
- 2 threads (torch.set_num_threads), this machine's core count.

Prints one JSON line: {"torchImagesPerSec", "steps", "batch", "size", "threads", "torch"}, the
rate over the steps after `--warmup`. Run with Debian's /usr/bin/python3 (python3-torch).

With `--schedule` the rate follows densestream's: linear warm-up over `--lr-warmup` steps to 0.05,
then cosine to 0 at the last step, and weight decay is decoupled (densestream's SGD). With
`--knn-train N --knn-test M` it also scores `densestream eval --protocol knn` on Fashion-MNIST
before and after training: pooled backbone features of whole images (batch norm in inference
mode), memory = the first N training images, queries = the first M test images, cosine
similarity, weighted vote at k = 20, tau = 0.07 (solo-learn); the line gains "knnInit",
"knnFinal" and "seconds" (training wall time). With `--seconds S` it trains until S seconds have
passed (at least `--warmup` + 1 steps), and with `--schedule` the cosine runs on the clock: after
the `--lr-warmup` steps its progress is the share of the remaining seconds gone, so the rate
reaches 0 at the deadline however the step rate drifts. A step count planned from a measured rate
missed it by up to a fifth either way here.

`--init-from RUN` starts from a densestream run's online encoder and head instead of PyTorch's
initialisation (`bench twin-knn` uses it to compare learning from one starting point); `--init he`
draws densestream's He-normal convolutions (on fan_in) instead of PyTorch's default, and
`--init torchvision` torchvision's ResNet convolutions (He-normal on fan_out, what the MoCo and
DenseCL code trains from); `--log-every N` prints the loss to stderr.
"""
import argparse, gzip, json, math, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FASHION_MNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
LUMA = torch.tensor([0.299, 0.587, 0.114])


def read_images(path: str) -> torch.Tensor:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    count, height, width = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(count, height, width).copy())


class SameConv(nn.Conv2d):
    """A bias-free convolution padded as TensorFlow's "same" (densestream's): at stride 2 on an even
    size, 0 before and 1 after, where PyTorch's padding=1 puts 1 on each side."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int):
        super().__init__(c_in, c_out, k, stride, 0, bias=False)

    def forward(self, x):
        k, s, h, w = self.kernel_size[0], self.stride[0], x.shape[-2], x.shape[-1]
        ph, pw = max((math.ceil(h / s) - 1) * s + k - h, 0), max((math.ceil(w / s) - 1) * s + k - w, 0)
        return super().forward(F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.a = nn.Sequential(SameConv(c_in, c_out, 3, stride), nn.BatchNorm2d(c_out), nn.ReLU())
        self.b = nn.Sequential(SameConv(c_out, c_out, 3, 1), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Sequential(SameConv(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        return torch.relu(self.b(self.a(x)) + self.shortcut(x))


def slim_encoder() -> nn.Module:
    layers, c_in = [SameConv(3, 32, 3, 2), nn.BatchNorm2d(32), nn.ReLU()], 32
    for stage, c_out in enumerate([32, 64, 128]):
        layers.append(BasicBlock(c_in, c_out, 1 if stage == 0 else 2))
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


def branch() -> nn.Module:
    return nn.Sequential(slim_encoder(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 128))


def load_densestream(branch_: nn.Module, run: str) -> None:
    """Copies a densestream checkpoint's online encoder and global head into `branch_` (HWIO → OIHW).
    Batch-norm running statistics stay at their initial 0 and 1, as in a fresh densestream encoder:
    the checkpoint's have seen one batch (see bench twin-knn), and only inference mode reads them."""
    with open(f"{run}/checkpoint/weights.json") as f:
        meta = json.load(f)
    with open(f"{run}/checkpoint/weights.bin", "rb") as f:
        raw = f.read()
    tensors, offset = {}, 0
    for w in meta["weights"]:
        n = int(np.prod(w["shape"])) if w["shape"] else 1
        tensors[w["name"]] = torch.from_numpy(np.frombuffer(raw, np.float32 if w["dtype"] == "float32" else np.int32, n, offset)
                                              .reshape(w["shape"]).copy())
        offset += n * 4
    enc, head = branch_[0], branch_
    def conv_bn(conv: nn.Module, bn: nn.Module, name: str) -> None:
        conv.weight.data.copy_(tensors[f"online/encoder/{name}/w"].permute(3, 2, 0, 1))
        for ours, theirs in (("weight", "gamma"), ("bias", "beta")):
            getattr(bn, ours).data.copy_(tensors[f"online/encoder/{name}/bn/{theirs}"])
    conv_bn(enc[0], enc[1], "stem")
    for stage in range(3):
        block, name = enc[3 + stage], f"stage{stage}/block0"
        conv_bn(block.a[0], block.a[1], f"{name}/a")
        conv_bn(block.b[0], block.b[1], f"{name}/b")
        if not isinstance(block.shortcut, nn.Identity):
            conv_bn(block.shortcut[0], block.shortcut[1], f"{name}/shortcut")
    for i, layer in ((0, head[1]), (1, head[3])):
        layer.weight.data.copy_(tensors[f"online/global/fc{i}/w"].T)
        layer.bias.data.copy_(tensors[f"online/global/fc{i}/b"])


def crop_boxes(b: int, height: int, width: int):
    """RandomResizedCrop's boxes, in whole source pixels: (x0, y0, w, h, flip), each a [b] tensor.

    torchvision's sampling, as densestream's (operators/view-geometry.ts): up to ten draws of
    (scale, ratio) per view, each rounded to a whole-pixel box and kept if it fits, at a whole-pixel
    position; else the whole image, clamped to the ratio range. Two earlier forms of this twin made
    its crops differ from densestream's: clamping an oversized draw to the image (mean area 0.59
    against 0.55), then testing the fit before rounding to pixels (0.538 against 0.553 at 28 px,
    and half as many views a full side wide).
    """
    tries = 10
    area = torch.empty(b, tries).uniform_(0.2, 1.0) * (height * width)
    ratio = torch.exp(torch.empty(b, tries).uniform_(math.log(3 / 4), math.log(4 / 3)))
    w_all = torch.round(torch.sqrt(area * ratio))
    h_all = torch.round(torch.sqrt(area / ratio))
    fits = (w_all > 0) & (h_all > 0) & (w_all <= width) & (h_all <= height)
    first = torch.argmax(fits.int(), dim=1, keepdim=True)  # the first draw that fits
    found = fits.any(dim=1)
    fw, fh = float(width), float(height)
    if width / height < 3 / 4:
        fh = float(round(fw / (3 / 4)))
    elif width / height > 4 / 3:
        fw = float(round(fh * (4 / 3)))
    w = torch.where(found, w_all.gather(1, first).squeeze(1), torch.full((b,), fw))
    h = torch.where(found, h_all.gather(1, first).squeeze(1), torch.full((b,), fh))
    x0 = torch.where(found, torch.floor(torch.rand(b) * (width - w + 1)), torch.floor((width - w) / 2))
    y0 = torch.where(found, torch.floor(torch.rand(b) * (height - h + 1)), torch.floor((height - h) / 2))
    flip = torch.rand(b) < 0.5
    return x0, y0, w, h, flip


def crop_grids(boxes, height: int, width: int, size: int) -> torch.Tensor:
    """The boxes and flips as affine grids for grid_sample: bilinear at half-pixel centres."""
    x0, y0, w, h, flip = boxes
    theta = torch.zeros(len(x0), 2, 3)
    theta[:, 0, 0] = w / width * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = (x0 + w / 2) / width * 2 - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (y0 + h / 2) / height * 2 - 1
    return F.affine_grid(theta, [len(x0), 3, size, size], align_corners=False)


def libvips_axis(start: torch.Tensor, extent: torch.Tensor, length: int, size: int) -> torch.Tensor:
    """[b, size, length] weights of one axis as libvips' enlargement (sharp's resize) cuts a crop no
    larger than the view, which densestream's views copied until December 2026: output pixel i
    bilinear at `start + i·f − ½` (f = extent / size) on every axis, a kept one included, the
    image's edge pixels repeated."""
    if bool((extent > size).any()):
        raise SystemExit("--resample libvips: written for crops no larger than the view only")
    f = (extent / size).view(-1, 1)
    at = start.view(-1, 1) + torch.arange(size, dtype=torch.float32).view(1, -1) * f - 0.5
    j = torch.floor(at)
    t = at - j
    lo = j.clamp(0, length - 1).long()
    hi = (j + 1).clamp(0, length - 1).long()
    out = torch.zeros(len(start), size, length)
    out.scatter_add_(2, lo.unsqueeze(2), (1 - t).unsqueeze(2))
    out.scatter_add_(2, hi.unsqueeze(2), t.unsqueeze(2))
    return out


def libvips_views(x: torch.Tensor, boxes, size: int) -> torch.Tensor:
    """The views as `rows · image · colsᵀ`, the flip mirroring the output columns."""
    x0, y0, w, h, flip = boxes
    height, width = x.shape[-2:]
    rows = libvips_axis(y0, h, height, size)
    cols = libvips_axis(x0, w, width, size)
    cols = torch.where(flip.view(-1, 1, 1), cols.flip(1), cols)
    return torch.einsum("bsh,bchw,btw->bcst", rows, x, cols)


def colour_matrices(b: int, mean_grey: torch.Tensor):
    """Per-view 3x3 colour matrix and offset: brightness, contrast, saturation, hue, grey."""
    eye = torch.eye(3).expand(b, 3, 3)
    jitter = torch.rand(b) < 0.8
    bright = torch.where(jitter, torch.empty(b).uniform_(0.6, 1.4), torch.ones(b))
    contrast = torch.where(jitter, torch.empty(b).uniform_(0.6, 1.4), torch.ones(b))
    sat = torch.where(jitter, torch.empty(b).uniform_(0.6, 1.4), torch.ones(b))
    hue = torch.where(jitter, torch.empty(b).uniform_(-0.1, 0.1), torch.zeros(b))
    grey = LUMA.expand(3, 3)
    saturation = sat.view(b, 1, 1) * eye + (1 - sat.view(b, 1, 1)) * grey
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.tensor([[1, 0.956, 0.621], [1, -0.272, -0.647], [1, -1.106, 1.703]])
    t = 2 * math.pi * hue
    rotate = torch.zeros(b, 3, 3)
    rotate[:, 0, 0] = 1
    rotate[:, 1, 1], rotate[:, 1, 2] = torch.cos(t), -torch.sin(t)
    rotate[:, 2, 1], rotate[:, 2, 2] = torch.sin(t), torch.cos(t)
    matrix = (from_yiq @ rotate @ to_yiq @ saturation) * (bright * contrast).view(b, 1, 1)
    offset = (1 - contrast) * bright * mean_grey
    greyed = torch.rand(b) < 0.2
    matrix = torch.where(greyed.view(b, 1, 1), grey @ matrix, matrix)
    return matrix, offset


def blur(x: torch.Tensor, size: int) -> torch.Tensor:
    """Gaussian blur with p 0.5, sigma in [0.1, 2] * size / 224, per view: one grouped separable conv."""
    b = x.shape[0]
    sigma = torch.empty(b).uniform_(0.1 * size / 224, 2.0 * size / 224)
    on = torch.rand(b) < 0.5
    radius = max(1, math.ceil(3 * 2.0 * size / 224))
    d = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-(d.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    taps = taps / taps.sum(1, keepdim=True)
    delta = (d == 0).float().expand(b, -1)
    taps = torch.where(on.view(b, 1), taps, delta).repeat_interleave(3, 0)  # [b*3, k]
    flat = x.reshape(1, b * 3, size, size)
    flat = F.pad(flat, (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, taps.view(b * 3, 1, 1, -1), groups=b * 3)
    flat = F.conv2d(flat, taps.view(b * 3, 1, -1, 1), groups=b * 3)
    return flat.view(b, 3, size, size)


def views(images: torch.Tensor, size: int, resample: str = "centres") -> torch.Tensor:
    """One MoCo v2 view of each image (uint8 [b, h, w]), normalised [b, 3, size, size]; `resample` as --resample."""
    b = images.shape[0]
    x = images.float().unsqueeze(1).expand(b, 3, *images.shape[1:])
    boxes = crop_boxes(b, *images.shape[1:])
    if resample == "libvips":
        v = libvips_views(x, boxes, size)
    else:
        v = F.grid_sample(x, crop_grids(boxes, *images.shape[1:], size), mode="bilinear", padding_mode="border", align_corners=False)
    mean_grey = (v * LUMA.view(1, 3, 1, 1)).sum(1).mean((1, 2))
    matrix, offset = colour_matrices(b, mean_grey)
    v = torch.einsum("bij,bjhw->bihw", matrix, v) + offset.view(b, 1, 1, 1)
    v = blur(v.clamp(0, 255), size)
    return (v / 255 - MEAN) / STD


def read_labels(path: str) -> torch.Tensor:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    return torch.from_numpy(np.frombuffer(raw, np.uint8, offset=8).astype(np.int64))


def whole(images: torch.Tensor, size: int) -> torch.Tensor:
    """Whole images, grey to RGB, resized to `size` (bilinear, half-pixel centres), normalised."""
    x = images.float().unsqueeze(1).expand(images.shape[0], 3, *images.shape[1:])
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (x / 255 - MEAN) / STD


@torch.no_grad()
def knn_accuracy(encoder: nn.Module, memory, memory_labels, queries, query_labels, size: int, k: int = 20, tau: float = 0.07) -> float:
    was = encoder.training
    encoder.eval()
    embed = lambda imgs: F.normalize(torch.cat([encoder(whole(imgs[i:i + 256], size)) for i in range(0, len(imgs), 256)]), dim=1)
    m, q = embed(memory), embed(queries)
    encoder.train(was)
    sim = q @ m.T
    top, idx = sim.topk(k, dim=1)
    votes = torch.zeros(len(q), 10).scatter_add_(1, memory_labels[idx], torch.exp(top / tau))
    return (votes.argmax(1) == query_labels).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--queue", type=int, default=4096)
    p.add_argument("--schedule", action="store_true")
    p.add_argument("--lr-warmup", type=int, default=20)
    p.add_argument("--knn-train", type=int, default=0)
    p.add_argument("--knn-test", type=int, default=0)
    p.add_argument("--log-every", type=int, default=0, help="print the loss to stderr every N steps")
    p.add_argument("--init-from", default="", help="start from the online encoder and head of a densestream run (a folder holding checkpoint/)")
    p.add_argument("--init", choices=["torch", "he", "torchvision"], default="torch",
                   help="conv weights: PyTorch's default (kaiming_uniform, a=sqrt 5), densestream's He-normal on fan_in (std sqrt(2/fan_in)), "
                        "or torchvision's ResNet (He-normal on fan_out, std sqrt(2/fan_out)), which the MoCo and DenseCL code trains from")
    p.add_argument("--seconds", type=float, default=0,
                   help="train for this wall time instead of --steps; with --schedule the cosine runs on the clock "
                        "from the end of --lr-warmup to the deadline")
    p.add_argument("--seed", type=int, default=0, help="seeds the init, the order and the views (not densestream's streams)")
    p.add_argument("--resample", choices=["centres", "libvips"], default="centres",
                   help="resize a crop bilinearly at half-pixel centres (torchvision, densestream), or at the offset "
                        "libvips' enlargement takes (half an output pixel early), to tell the two apart in learning")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    images = read_images(FASHION_MNIST)
    online, momentum = branch(), branch()
    fan = {"he": "fan_in", "torchvision": "fan_out"}.get(a.init)  # None: PyTorch's layer default, as drawn
    if fan:
        for m in online.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode=fan, nonlinearity="relu")
    if a.init_from:
        load_densestream(online, a.init_from)
    momentum.load_state_dict(online.state_dict())
    for q in momentum.parameters():
        q.requires_grad_(False)
    queue = F.normalize(torch.randn(a.queue, 128), dim=1)
    opt = torch.optim.SGD(online.parameters(), lr=0.05, momentum=0.9, weight_decay=0 if a.schedule else 1e-4)
    total = a.warmup + a.steps
    knn = None
    if a.knn_train > 0:
        test_images = read_images(f"{FASHION_DIR}/t10k-images-idx3-ubyte.gz")
        knn = (images[: a.knn_train], read_labels(f"{FASHION_DIR}/train-labels-idx1-ubyte.gz")[: a.knn_train],
               test_images[: a.knn_test], read_labels(f"{FASHION_DIR}/t10k-labels-idx1-ubyte.gz")[: a.knn_test])
        knn_init = knn_accuracy(online[0], *knn, a.size)
    started = time.perf_counter()
    order, at, stamps = torch.randperm(len(images)), 0, []
    step = 0
    deadline = started + a.seconds if a.seconds > 0 else math.inf
    cosine_from = None  # when the cosine began, on the clock (--seconds)

    def running() -> bool:
        return step < total if a.seconds <= 0 else step <= a.warmup or time.perf_counter() < deadline

    while running():
        if a.schedule:
            if step < a.lr_warmup:
                lr = 0.05 * (step + 1) / a.lr_warmup
            else:
                if a.seconds > 0:
                    now = time.perf_counter()
                    if cosine_from is None:
                        cosine_from = now
                    progress = (now - cosine_from) / max(1e-9, deadline - cosine_from)
                else:
                    progress = (step - a.lr_warmup) / max(1, total - a.lr_warmup)
                lr = 0.05 * 0.5 * (1 + math.cos(math.pi * min(1, progress)))
            for g in opt.param_groups:
                g["lr"] = lr
        if at + a.batch > len(order):
            order, at = torch.randperm(len(images)), 0
        batch = images[order[at:at + a.batch]]
        at += a.batch
        with torch.no_grad():
            v1, v2 = views(batch, a.size, a.resample), views(batch, a.size, a.resample)
        q = F.normalize(online(v1), dim=1)
        with torch.no_grad():
            k = F.normalize(momentum(v2), dim=1)
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / 0.2
        loss = F.cross_entropy(logits, torch.zeros(a.batch, dtype=torch.long))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if a.schedule:
            with torch.no_grad():  # decoupled weight decay after the step, on weights only (densestream's SGD)
                for w in online.parameters():
                    if w.dim() > 1:
                        w.mul_(1 - lr * 1e-4)
        with torch.no_grad():
            for po, pm in zip(online.parameters(), momentum.parameters()):
                pm.mul_(0.99).add_(po, alpha=0.01)
            queue = torch.cat([k, queue])[: a.queue]
        stamps.append(time.perf_counter())
        step += 1
        if a.log_every > 0 and step % a.log_every == 0:
            print(json.dumps({"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]}), file=sys.stderr)
    if a.seconds > 0:
        a.steps = step - a.warmup
    seconds = stamps[-1] - stamps[a.warmup - 1]
    line = {"torchImagesPerSec": a.steps * a.batch / seconds, "steps": a.steps, "batch": a.batch, "size": a.size,
            "threads": a.threads, "torch": torch.__version__}
    if knn is not None:
        line.update(seconds=stamps[-1] - started, knnInit=knn_init, knnFinal=knn_accuracy(online[0], *knn, a.size))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
