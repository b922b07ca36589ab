#!/usr/bin/env python3
"""Reference for `gcl-repro bench loader`: torchvision's DataLoader doing the same transforms
on the same list file (random-resized-crop 224 + flip + colour jitter 0.4 for training, resize
256 + centre crop 224 for evaluation, ImageNet normalisation). One warm-up batch is excluded
from the timing, as on the Rust side. Prints `RESULT images=N seconds=S images_per_s=R`.
Needs torch, torchvision (0.26.0 for torch 2.11.0) and pillow."""
import argparse
import os
import random
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ListDataset(Dataset):
    def __init__(self, root, list_path, transform):
        self.root, self.transform = root, transform
        with open(list_path) as f:
            self.items = [(p, int(l)) for p, l in (line.split() for line in f if line.strip())]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with open(os.path.join(self.root, path), "rb") as f:
            img = Image.open(f).convert("RGB")  # as torchvision's ImageFolder loader
        return self.transform(img), label


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mode", choices=["train", "eval"], default="train")
    a = ap.parse_args()

    if a.mode == "train":
        tf = transforms.Compose([
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])
    else:
        tf = transforms.Compose([
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])
    ds = ListDataset(a.root, a.list, tf)
    total = (a.batches + 1) * a.batch_size
    order = [i % len(ds) for i in range(total)]
    if a.mode == "train":
        random.Random(0).shuffle(order)
    loader = DataLoader(ds, batch_size=a.batch_size, sampler=order, num_workers=a.workers)

    it = iter(loader)
    x, _ = next(it)  # warm-up: worker start-up is not timed
    assert tuple(x.shape) == (a.batch_size, 3, 224, 224), x.shape
    start, images = time.perf_counter(), 0
    for x, _ in it:
        images += x.shape[0]
    seconds = time.perf_counter() - start
    print(f"RESULT images={images} seconds={seconds:.4f} images_per_s={images / seconds:.1f}")


if __name__ == "__main__":
    main()
