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
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
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


def faces(sess, img, floor=0.3):
    """(score, centre-size box) after non-max suppression (IoU 0.3), scores over `floor`."""
    out = sess.run(None, {sess.get_inputs()[0].name: T.tensor(img)[None].numpy()})
    keep = []
    for score, box, _ in T.decode([torch.from_numpy(o) for o in out], img.size[0], floor):
        if all(T.iou(box, k[1]) <= 0.3 for k in keep):
            keep.append((score, box))
    return keep


def paired(frozen, tuned, img):
    """The frozen model's faces (>= THRESHOLD) with the tuned model's score for each."""
    a, b = faces(frozen, img), faces(tuned, img)
    return [(s, max([t[0] for t in b if T.iou(t[1], box) > 0.3], default=0.0)) for s, box in a if s >= THRESHOLD]


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
    pool = T.Faces(os.path.join(args.data, 'fairface'), 256, split=range(80, 90))
    rng = np.random.default_rng(123)
    drops, lost = [], 0
    for _ in range(args.crowds):
        x = T.crowd_canvas(pool, rng)
        img = Image.fromarray(x.numpy().transpose(1, 2, 0)[:, :, ::-1].astype(np.uint8))
        for s, t in paired(frozen, tuned, img):
            drops.append(s - t)
            lost += t < THRESHOLD
    d = np.array(drops)
    print(f'crowds of validation faces: {len(d)} faces, tuned drops {lost} below {THRESHOLD}; '
          f'score drift mean {d.mean():.4f}, 95th percentile {np.quantile(d, 0.95):.3f}, most {d.max():.3f}')


if __name__ == '__main__':
    main()
