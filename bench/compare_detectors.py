#!/usr/bin/env python3
"""Two YuNet ONNX files side by side (onnxruntime, f32), for `bench/tune_detector.py`'s
candidates: does the tuned one keep the frozen one's faces? A screen before the library's own
tests (`tests/photos.rs`, `tests/utkface_crops.rs`, which run the int8 graph with its looks).

- The shared photos and non-face photos, each drawn on a 512 canvas as the library draws it
  (scaled into a 10% margin): every face the frozen model scores 0.75 or more (the library's
  threshold), and the tuned model's score for it; the strongest non-face either way.
- Synthetic crowds (`tune_detector.crowd`) of FairFace's *validation* faces (the trainer's
  split, unseen in tuning): how many frozen faces the tuned model drops below 0.75, and by how
  much scores drift. Upstream against upstream drops none.

    .venv/bin/python bench/compare_detectors.py ../shared/models/yunet/yunet_n_dynamic.onnx \
        /tmp/yunet_tuned.onnx --data ../shared/data
"""
import argparse
import math
import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tune_detector as T  # noqa: E402

THRESHOLD = 0.75


def canvas(img, side=512):
    w, h = img.size
    s = min(1.0, 0.8 * side / max(w, h))
    im = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
    c = Image.new('RGB', (side, side))
    c.paste(im, ((side - im.size[0]) // 2, (side - im.size[1]) // 2))
    return c


def iou(a, b):
    iw = max(0, min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2))
    ih = max(0, min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2))
    i = iw * ih
    return i / (a[2] * a[3] + b[2] * b[3] - i)


def faces(sess, img, floor=0.3):
    """(score, centre-size box) after non-max suppression (IoU 0.3), scores over `floor`."""
    x = np.asarray(img, np.float32)[:, :, ::-1].transpose(2, 0, 1)[None].copy()
    out = sess.run(None, {sess.get_inputs()[0].name: x})
    cand = []
    for li, s in enumerate(T.STRIDES):
        w = img.size[0] // s
        score = np.sqrt(np.clip(out[li][0, :, 0], 0, 1) * np.clip(out[3 + li][0, :, 0], 0, 1))
        for i in np.nonzero(score > floor)[0]:
            r, c = divmod(int(i), w)
            b = out[6 + li][0, i]
            cand.append((float(score[i]), ((c + b[0]) * s, (r + b[1]) * s, math.exp(b[2]) * s, math.exp(b[3]) * s)))
    cand.sort(key=lambda t: -t[0])
    keep = []
    for c in cand:
        if all(iou(c[1], k[1]) <= 0.3 for k in keep):
            keep.append(c)
    return keep


def paired(frozen, tuned, img):
    """The frozen model's faces (>= THRESHOLD) with the tuned model's score for each."""
    a, b = faces(frozen, img), faces(tuned, img)
    return [(s, max([t[0] for t in b if iou(t[1], box) > 0.3], default=0.0)) for s, box in a if s >= THRESHOLD]


class ValidationFaces(T.Faces):
    def __init__(self, root, side):
        folder = os.path.join(root, 'train')
        names = sorted(os.listdir(folder), key=lambda s: int(s.split('.')[0]))
        self.paths = [os.path.join(folder, n) for n in names if 80 <= T.fnv1a(n.encode()) % 100 < 90]
        self.side = side


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('frozen')
    ap.add_argument('tuned')
    ap.add_argument('--data', required=True, help='the shared data folder (photos/, nonface/, fairface/)')
    ap.add_argument('--crowds', type=int, default=150)
    args = ap.parse_args()
    frozen, tuned = ort.InferenceSession(args.frozen), ort.InferenceSession(args.tuned)
    for name in sorted(os.listdir(os.path.join(args.data, 'photos'))):
        img = canvas(Image.open(os.path.join(args.data, 'photos', name)).convert('RGB'))
        p = paired(frozen, tuned, img)
        print(f'{name}: {len(p)} faces, tuned keeps {sum(t >= THRESHOLD for _, t in p)}; lowest score '
              f'{min(s for s, _ in p):.3f} frozen, {min(t for _, t in p):.3f} tuned')
    for name in sorted(os.listdir(os.path.join(args.data, 'nonface'))):
        img = canvas(Image.open(os.path.join(args.data, 'nonface', name)).convert('RGB'))
        best = [max([s for s, _ in faces(m, img)], default=0.0) for m in (frozen, tuned)]
        print(f'nonface {name}: strongest {best[0]:.2f} frozen, {best[1]:.2f} tuned')
    pool = ValidationFaces(os.path.join(args.data, 'fairface'), 256)
    rng = np.random.default_rng(123)
    drops, lost = [], 0
    for _ in range(args.crowds):
        x, _, _ = T.crowd(lambda t: [], pool, rng, hold=False)
        img = Image.fromarray(x.numpy().transpose(1, 2, 0)[:, :, ::-1].astype(np.uint8))
        for s, t in paired(frozen, tuned, img):
            drops.append(s - t)
            lost += t < THRESHOLD
    d = np.array(drops)
    print(f'crowds of validation faces: {len(d)} faces, tuned drops {lost} below {THRESHOLD}; '
          f'score drift mean {d.mean():.4f}, 95th percentile {np.quantile(d, 0.95):.3f}, most {d.max():.3f}')


if __name__ == '__main__':
    main()
