"""PyTorch twin of one densestream training step, for every method: the reference side of
`npm run bench -- parity` and of test/parity.test.ts.

Usage: /usr/bin/python3 bench/torch_parity.py FIXTURE.json   (Debian's python3-torch)

The fixture holds densestream's initial weights and queues and the case's hyper-parameters
(bench/parity-cases.ts). This script rebuilds the batches from the same integer hash, runs
the method as its reference code does, and writes into the fixture, under "torch": the loss and
its parts on batch 0, every gradient, the whole state after one step, and the losses of a
20-step run.

Written from the methods' definitions and their official code, not from densestream's:
- MoCo v2 (facebookresearch/moco): logits [l_pos, l_neg] / tau, cross-entropy at label 0,
  FIFO queue with a pointer; plus the align loss E||z1 - z2||^2 (Wang & Isola).
- DenseCL (WXinlong/DenseCL, densecl.py): correspondence by argmax of normalised backbone
  features, the dense queue fed with normalize(avgpool(dense projection)),
  loss = (1 - lambda) * single + lambda * dense.
- HAPiCL / HARL: masks pooled to the grid (>= half foreground), masked average pooling
  sum(f*m)/(sum(m)+1), pixel NT-Xent (sum_pos + 1)/(sum_all + 2), fg vs fg and bg vs bg
  in-batch InfoNCE over the images with the region in both views, L = L_pix + beta*L_img + (1-beta)*(alpha*L_fg + (1-alpha)*L_bg).
- Soft-ranking distillation (METHODS.md section 4, densestream's documented reading):
  P = sigmoid(pairwise differences / tau), BCE with logits, w = softmax(t / tau_w).

Deliberate, documented choices that both sides share (not differences from the references):
- Convolutions pad as TensorFlow's "SAME" does (at stride 2 on even sizes: 0 before, 1 after),
  not PyTorch's symmetric padding=1; densestream is built on tfjs.
- The momentum branch is updated after the optimiser step (MoCo updates it before computing the
  next keys: the same sequence of weights, one call earlier).
- SGD with momentum and decoupled weight decay on weights named ".../w" (p *= 1 - lr*wd after
  the step), as densestream's trainer; torch's coupled weight_decay is not used.
"""
import base64, json, math, sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
np.seterr(over="ignore")  # the hash multiplies modulo 2^32 on purpose
M32 = np.uint32(0xFFFFFFFF)
STREAM = {"view0": 0, "view1": 1, "mask0": 2, "mask1": 3, "negatives": 4}


def mix32(x):
    x = np.asarray(x, dtype=np.uint32)
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    x = x ^ (x >> np.uint32(16))
    return x


def hash_draws(step, purpose, count):
    key = mix32(np.uint32(step * 16 + STREAM[purpose]))
    return mix32(key + np.arange(count, dtype=np.uint32))


def load(t):
    dtype = np.int32 if t["dtype"] == "int32" else np.float32
    return torch.from_numpy(np.frombuffer(base64.b64decode(t["data"]), dtype=dtype).reshape(t["shape"]).copy())


def store(x):
    a = x.detach().cpu().numpy()
    a = a.astype(np.int32 if a.dtype.kind in "iu" else np.float32)
    return {"shape": list(a.shape), "dtype": "int32" if a.dtype == np.int32 else "float32",
            "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}


class Case:
    def __init__(self, fixture):
        self.name = fixture["method"]
        self.p = fixture["parity"]
        self.state = {k: load(v) for k, v in fixture["initial"].items()}
        self.trainable = list(fixture["trainable"])
        for k in self.trainable:
            self.state[k].requires_grad_(True)

    # ---- data, from the shared hash ----
    def view(self, step, k):
        b, s = self.p["batch"], self.p["size"]
        h = hash_draws(step, f"view{k}", b * s * s * 3)
        x = torch.from_numpy(((h % 1021).astype(np.float32) / np.float32(256) - np.float32(2)).reshape(b, s, s, 3))
        return x.permute(0, 3, 1, 2).contiguous()  # NCHW

    def mask(self, step, k):
        b, s = self.p["batch"], self.p["size"]
        return torch.from_numpy((hash_draws(step, f"mask{k}", b * s * s) % 2).astype(np.float32).reshape(b, 1, s, s))

    def negatives(self, step):
        b, k, d = self.p["batch"], self.p["negatives"], self.p["dim"]
        raw = (hash_draws(step, "negatives", (b // 2) * k * d) % 2001).astype(np.float64) / 1000 - 1
        raw = raw.reshape(b // 2, k, d)
        return torch.from_numpy((raw / np.sqrt((raw ** 2).sum(-1, keepdims=True))).astype(np.float32))

    def ids(self, step):
        if self.name.startswith("softrank"):
            return [f"{step}a", f"{step}b", f"{step}c", f"{step}c"]
        return [f"{step}-{i}" for i in range(self.p["batch"])]

    # ---- network ----
    def conv_bn(self, x, name, stride, training):
        w = self.state[f"{name}/w"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        k = w.shape[-1]
        pads = []
        for n in (x.shape[3], x.shape[2]):  # F.pad wants the last axis first
            out = math.ceil(n / stride)
            total = max((out - 1) * stride + k - n, 0)
            pads += [total // 2, total - total // 2]  # TensorFlow SAME: the odd pixel after
        y = F.conv2d(F.pad(x, pads), w, stride=stride)
        bn = f"{name}/bn"
        return F.batch_norm(y, self.state[f"{bn}/mean"], self.state[f"{bn}/variance"], self.state[f"{bn}/gamma"],
                            self.state[f"{bn}/beta"], training=training, momentum=0.1, eps=1e-5)

    def encoder(self, scope, x, training=True):
        e = self.p["encoder"]
        pre = f"{scope}/encoder"
        h = F.relu(self.conv_bn(x, f"{pre}/stem", e["stemStride"], training))
        channels = e["width"]
        for stage, count in enumerate(e["blocks"]):
            out_c = e["width"] * 2 ** stage
            for i in range(count):
                s = 2 if stage > 0 and i == 0 else 1
                name = f"{pre}/stage{stage}/block{i}"
                a = F.relu(self.conv_bn(h, f"{name}/a", s, training))
                b = self.conv_bn(a, f"{name}/b", 1, training)
                skip = self.conv_bn(h, f"{name}/shortcut", s, training) if (s != 1 or channels != out_c) else h
                h = F.relu(b + skip)
                channels = out_c
        return h, h.mean((2, 3))  # dense NCHW, pooled [B, C]

    def mlp(self, prefix, x):
        i = 0
        while f"{prefix}/fc{i}/w" in self.state:
            if i > 0:
                x = F.relu(x)
            x = x @ self.state[f"{prefix}/fc{i}/w"] + self.state[f"{prefix}/fc{i}/b"]
            i += 1
        return x

    def dense_mlp(self, prefix, dense):
        """A 1x1-conv projector: NCHW -> [B, S*S, D], cells row-major."""
        b, c, s1, s2 = dense.shape
        return self.mlp(prefix, dense.permute(0, 2, 3, 1).reshape(b * s1 * s2, c)).reshape(b, s1 * s2, -1)

    # ---- losses ----
    @staticmethod
    def contrast(l_pos, l_neg, tau):
        logits = torch.cat([l_pos, l_neg], 1) / tau
        return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long))

    def mocov2_loss(self, step):
        tau = self.p["temperature"]
        q = F.normalize(self.mlp("online/global", self.encoder("online", self.view(step, 0))[1]), dim=1)
        with torch.no_grad():
            k = F.normalize(self.mlp("momentum/global", self.encoder("momentum", self.view(step, 1))[1]), dim=1)
        queue = self.state["queue/keys"]
        loss = self.contrast(torch.einsum("nc,nc->n", q, k)[:, None], q @ queue.t(), tau)
        align = ((q - k) ** 2).sum(1).mean()
        parts = {"global": loss, "align": align}
        return loss + self.p["alignWeight"] * align, parts, {"queue": k}

    def densecl_loss(self, step):
        tau, lam = self.p["temperature"], 0.5
        q_b, q_pool = self.encoder("online", self.view(step, 0))
        q = F.normalize(self.mlp("online/global", q_pool), dim=1)
        q_grid = F.normalize(self.dense_mlp("online/dense", q_b), dim=2)  # [B, P, D]
        q_b = F.normalize(q_b.flatten(2), dim=1)  # [B, C, P]
        with torch.no_grad():
            k_b, k_pool = self.encoder("momentum", self.view(step, 1))
            k = F.normalize(self.mlp("momentum/global", k_pool), dim=1)
            k_proj = self.dense_mlp("momentum/dense", k_b)
            k2 = F.normalize(k_proj.mean(1), dim=1)  # avgpool of the dense projection, then normalised
            k_grid = F.normalize(k_proj, dim=2)
            k_b = F.normalize(k_b.flatten(2), dim=1)
        single = self.contrast(torch.einsum("nc,nc->n", q, k)[:, None], q @ self.state["queue/keys"].t(), tau)
        ind = torch.matmul(q_b.permute(0, 2, 1), k_b).max(dim=2)[1]  # [B, P]
        indexed = torch.gather(k_grid, 1, ind[:, :, None].expand(-1, -1, k_grid.shape[2]))
        l_pos = (q_grid * indexed).sum(2).reshape(-1, 1)
        l_neg = q_grid.reshape(-1, q_grid.shape[2]) @ self.state["dense-queue/keys"].t()
        dense = self.contrast(l_pos, l_neg, tau)
        return (1 - lam) * single + lam * dense, {"global": single, "dense": dense}, {"queue": k, "dense-queue": k2}

    def hapicl_loss(self, step):
        tau, alpha, beta = self.p["temperature"], 0.5, 0.5
        f1, pooled1 = self.encoder("online", self.view(step, 0))
        grid = f1.shape[2]
        cell = self.p["size"] // grid
        m1 = (F.avg_pool2d(self.mask(step, 0), cell) >= 0.5).float()  # [B, 1, S, S]
        m2 = (F.avg_pool2d(self.mask(step, 1), cell) >= 0.5).float()

        def pool(f, m):
            return (f * m).sum((2, 3)) / (m.sum((2, 3)) + 1)

        with torch.no_grad():
            f2, pooled2 = self.encoder("momentum", self.view(step, 1))
            cells2 = F.normalize(self.dense_mlp("momentum/dense", f2), dim=2)
            k = F.normalize(self.mlp("momentum/global", pooled2), dim=1)
            k_fg = F.normalize(self.mlp("momentum/global", pool(f2, m2)), dim=1)
            k_bg = F.normalize(self.mlp("momentum/global", pool(f2, 1 - m2)), dim=1)
        cells1 = F.normalize(self.dense_mlp("online/dense", f1), dim=2)
        e = torch.exp(cells1 @ cells2.transpose(1, 2) / tau)  # [B, P, P]
        positive = m1.flatten(1)[:, :, None] * m2.flatten(1)[:, None, :]
        pix = (-torch.log(((e * positive).sum((1, 2)) + 1) / (e.sum((1, 2)) + 2))).mean()
        q = F.normalize(self.mlp("online/global", pooled1), dim=1)
        q_fg = F.normalize(self.mlp("online/global", pool(f1, m1)), dim=1)
        q_bg = F.normalize(self.mlp("online/global", pool(f1, 1 - m1)), dim=1)
        img = self.contrast(torch.einsum("nc,nc->n", q, k)[:, None], q @ self.state["queue/keys"].t(), tau)
        def in_batch(q_r, k_r, valid):
            # images without the region in both views are neither queries nor negatives
            logits = (q_r @ k_r.t() / tau).masked_fill(~valid[None, :], float("-inf"))
            loss = -torch.diagonal(F.log_softmax(logits, 1))
            return loss[valid].sum() / max(1, int(valid.sum()))

        has = lambda a, b: (a.sum((1, 2, 3)) > 0) & (b.sum((1, 2, 3)) > 0)
        fg = in_batch(q_fg, k_fg, has(m1, m2))
        bg = in_batch(q_bg, k_bg, has(1 - m1, 1 - m2))
        loss = pix + beta * img + (1 - beta) * (alpha * fg + (1 - alpha) * bg)
        return loss, {"pixel": pix, "image": img, "fg": fg, "bg": bg}, {"queue": k}

    @staticmethod
    def rank_distillation(s, t, tau_s=0.1, tau_t=0.04, tau_w=0.1):
        """Rows are anchors, columns candidates; pairs (i, j), i != j."""
        c = s.shape[1]
        p_t = torch.sigmoid((t[:, :, None] - t[:, None, :]) / tau_t)
        logit_s = (s[:, :, None] - s[:, None, :]) / tau_s
        bce = F.binary_cross_entropy_with_logits(logit_s, p_t, reduction="none")
        w = torch.softmax(t / tau_w, 1)[:, :, None] * (1 - torch.eye(c))[None]
        return ((w * bce).sum((1, 2)) / w.sum((1, 2))).mean()

    def softrank_loss(self, step, cross=False):
        ids = self.ids(step)
        b = len(ids)
        v1, v2 = self.view(step, 0), self.view(step, 1)
        online_in, target_in = v1.clone(), v2.clone()
        for i in range(0, b - 1, 2):
            if ids[i] == ids[i + 1]:  # the anchor is its own positive: the pair gets crossed views
                online_in[i + 1], target_in[i + 1] = v2[i + 1], v1[i + 1]
        f, pooled = self.encoder("online", online_in)
        y = self.mlp("online/global", pooled)
        queries = F.normalize(self.mlp("online/predictor", y), dim=1)
        keys = F.normalize(y, dim=1)
        cells = F.normalize(self.dense_mlp("online/dense", f), dim=2)  # [B, P, D]
        with torch.no_grad():
            tf_, t_pooled = self.encoder("momentum", target_in)
            z = F.normalize(self.mlp("momentum/global", t_pooled), dim=1)
            t_cells = F.normalize(self.dense_mlp("momentum/dense", tf_), dim=2)
        off = ~torch.eye(b, dtype=torch.bool)
        if cross:  # every row's target z a candidate, the anchor's own included
            s, t = queries @ z.t(), z @ z.t()
        else:
            s = (queries @ keys.t())[off].reshape(b, b - 1)
            t = (z @ z.t())[off].reshape(b, b - 1)
        neg = self.negatives(step).repeat_interleave(2, 0)  # pair i's negatives on both its rows
        s = torch.cat([s, torch.einsum("bd,bkd->bk", queries, neg)], 1)
        t = torch.cat([t, torch.einsum("bd,bkd->bk", z, neg)], 1)
        image = self.rank_distillation(s, t)
        patch = self.rank_distillation((cells[0::2] * cells[1::2]).sum(2), (t_cells[0::2] * t_cells[1::2]).sum(2))
        # The collapse indicators densestream logs: the target's off-diagonal cosines, their mean and mean per-row spread.
        zz = (z @ z.t())[off].reshape(b, b - 1)
        parts = {
            "image": image,
            "patch": patch,
            "negatives": torch.tensor(float(self.p["negatives"])),
            "targetSimilarity": zz.mean(1).mean(),
            "targetSpread": zz.var(1, unbiased=False).sqrt().mean(),
        }
        return image + patch, parts, {}

    def softrank_cross_loss(self, step):
        return self.softrank_loss(step, cross=True)

    def loss(self, step):
        return getattr(self, f"{self.name.replace('-', '_')}_loss")(step)

    # ---- the step ----
    def train_step(self, step, lr, bufs):
        loss, _, keys = self.loss(step)
        params = [self.state[k] for k in self.trainable]
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for name, p, g in zip(self.trainable, params, grads):
                buf = bufs.get(name)
                bufs[name] = buf = g.clone() if buf is None else buf * self.p["sgdMomentum"] + g
                p -= lr * buf
                if name.endswith("/w"):
                    p *= 1 - lr * self.p["weightDecay"]
            m = self.p["ema"]
            for name in self.trainable:
                target = "momentum/" + name[len("online/"):]
                if target in self.state:  # the predictor has no momentum copy
                    self.state[target].mul_(m).add_(self.state[name], alpha=1 - m)
            for queue, k in keys.items():
                ptr = int(self.state[f"{queue}/pointer"])
                rows = (ptr + torch.arange(k.shape[0])) % self.state[f"{queue}/keys"].shape[0]
                self.state[f"{queue}/keys"][rows] = k
                self.state[f"{queue}/pointer"] = torch.tensor((ptr + k.shape[0]) % self.state[f"{queue}/keys"].shape[0], dtype=torch.int32)
        return float(loss)


def lr_at(p, step, total):
    return 0.5 * p["learningRate"] * (1 + math.cos(math.pi * min(1, step / max(1, total))))


def run(fixture):
    case = Case(fixture)
    loss, parts, _ = case.loss(0)
    grads = torch.autograd.grad(loss, [case.state[k] for k in case.trainable])
    out = {"loss": float(loss), "parts": {k: float(v) for k, v in parts.items()},
           "grads": {k: store(g) for k, g in zip(case.trainable, grads)}}
    case = Case(fixture)
    case.train_step(0, lr_at(case.p, 0, 1), {})
    out["afterStep"] = {k: store(v) for k, v in case.state.items()}
    case, bufs, steps = Case(fixture), {}, fixture["parity"]["steps"]
    out["losses"] = [case.train_step(s, lr_at(case.p, s, steps), bufs) for s in range(steps)]
    out["version"] = torch.__version__
    return out


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path) as f:
        fixture = json.load(f)
    fixture["torch"] = run(fixture)
    with open(path, "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    print(json.dumps({"twin": fixture["method"], "loss": fixture["torch"]["loss"], "torch": torch.__version__}))
