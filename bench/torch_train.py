"""PyTorch CPU training speed for the same architecture, loss and batch size as our trainer.

The architecture mirrors trainer/src/model.rs (NetConfig::standard): conv-bn-relu trunk
3->32 s2, 32->32, 32->64 s2, 64->64, 64->128 s2, dw128, pw128->192, dw192, pw192->256, dw256,
pw256->256, global average pool, dropout 0.1, Linear(256, 101) age logits and Linear(256, 1) gender logit. The loss
mirrors trainer/src/training/loss.rs: cross-entropy against a Gaussian label distribution (sigma 2) + L1 on
the expected age + BCE on gender, AdamW. Images are decoded and resized to 64x64 before timing (our
trainer decodes and augments on a second thread, overlapped with the step).

Prints one JSON object: {"threads": T, "batch": 64, "images": N, "img_per_s": [...per epoch...]}.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

AGE_BINS = 101


def layers():
    w = [32, 64, 128, 192, 256]
    full = lambda cin, cout, s: (cin, cout, 3, s, 1)
    dw = lambda c: (c, c, 3, 1, c)
    pw = lambda cin, cout: (cin, cout, 1, 1, 1)
    return [
        full(3, w[0], 2),
        full(w[0], w[0], 1),
        full(w[0], w[1], 2),
        full(w[1], w[1], 1),
        full(w[1], w[2], 2),
        dw(w[2]),
        pw(w[2], w[3]),
        dw(w[3]),
        pw(w[3], w[4]),
        dw(w[4]),
        pw(w[4], w[4]),
    ]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        mods = []
        for cin, cout, k, s, g in layers():
            mods += [nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        self.trunk = nn.Sequential(*mods)
        self.drop = nn.Dropout(0.1)
        self.age = nn.Linear(256, AGE_BINS)
        self.gender = nn.Linear(256, 1)

    def forward(self, x):
        x = self.trunk(x).mean(dim=(2, 3))
        x = self.drop(x)
        return self.age(x), self.gender(x)


def load(data, limit):
    from PIL import Image
    import numpy as np

    names = sorted(n for n in os.listdir(data) if n.lower().endswith(".jpg"))[:limit]
    xs, ages, genders = [], [], []
    for n in names:
        parts = n.split("_")
        try:
            age, gender = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            continue
        img = Image.open(os.path.join(data, n)).convert("RGB").resize((64, 64), Image.BILINEAR)
        xs.append(np.asarray(img, dtype=np.float32) / 127.5 - 1.0)
        ages.append(min(age, AGE_BINS - 1))
        genders.append(gender)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ages), torch.tensor(genders, dtype=torch.float32)


def synthetic(n):
    g = torch.Generator().manual_seed(0)
    return (
        torch.rand(n, 3, 64, 64, generator=g) * 2 - 1,
        torch.randint(0, AGE_BINS, (n,), generator=g),
        torch.randint(0, 2, (n,), generator=g).float(),
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, ages, genders = load(a.data, a.limit) if a.data and os.path.isdir(a.data) else synthetic(a.limit)
    bins = torch.arange(AGE_BINS, dtype=torch.float32)
    table = torch.exp(-0.5 * ((bins[None, :] - bins[:, None]) / 2.0) ** 2)
    table = table / table.sum(1, keepdim=True)
    model = Net()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rates = []
    n = x.shape[0]
    for epoch in range(a.epochs):
        order = torch.randperm(n)
        t0 = time.perf_counter()
        for i in range(0, n, a.batch):
            idx = order[i : i + a.batch]
            bx, ba, bg = x[idx], ages[idx], genders[idx]
            age_logits, gender_logit = model(bx)
            ce = -(table[ba] * F.log_softmax(age_logits, 1)).sum(1).mean()
            expected = F.softmax(age_logits, 1) @ bins
            l1 = (expected - ba.float()).abs().mean()
            g = F.binary_cross_entropy_with_logits(gender_logit.squeeze(1), bg)
            loss = ce + 0.5 * l1 + 3.0 * g
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates.append(n / (time.perf_counter() - t0))
        print(f"torch epoch {epoch + 1}: {rates[-1]:.0f} img/s", file=sys.stderr)
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "batch": a.batch, "images": n, "img_per_s": rates}))


if __name__ == "__main__":
    main()
