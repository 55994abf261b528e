"""torchvision side of `npm run bench -- pipeline`: MoCo v2's two-view chain over a folder.

RandomResizedCrop(size, scale 0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, RandomGrayscale 0.2,
GaussianBlur p=0.5, horizontal flip, ToTensor, Normalize; two views; a DataLoader with
`--workers` processes. Prints one JSON line: {"torchvisionImagesPerSec": ...}.
"""
import argparse, json, os, time

import torch
from PIL import Image, ImageFilter
import random
from torchvision import transforms


class Blur:
    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, img):
        return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))


class Folder(torch.utils.data.Dataset):
    def __init__(self, root, transform):
        self.files = sorted(os.path.join(root, f) for f in os.listdir(root) if f.lower().endswith((".jpg", ".jpeg", ".png")))
        self.transform = transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        img = Image.open(self.files[i]).convert("RGB")
        return self.transform(img), self.transform(img)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("root")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    a = p.parse_args()
    torch.set_num_threads(1)
    view = transforms.Compose([
        transforms.RandomResizedCrop(a.size, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([Blur()], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = Folder(a.root, view)
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, num_workers=a.workers, shuffle=True)
    t0 = time.perf_counter()
    n = 0
    for v1, v2 in loader:
        n += v1.shape[0]
    dt = time.perf_counter() - t0
    print(json.dumps({"torchvisionImagesPerSec": n / dt, "images": n, "workers": a.workers}))


if __name__ == "__main__":
    main()
