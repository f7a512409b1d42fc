#!/usr/bin/python3
"""Trains pkg/deep's example network on MNIST with PyTorch on the CPU, the
reference for pkg/deep's speed: docs/DEEP.md.

    conv 20×5×5 relu, pool 2, conv 40×5×5 relu, pool 2,
    dense 100 relu dropout 0.5, softmax 10

float32, mini-batch SGD (learning rate 0.03, network3's L2 λ = 0.1 on the
weights), the 50,000 training images shuffled every epoch, accuracy on the
10,000 test images. Dropout drops the dense layer's inputs, as network3's
p_dropout does (PyTorch's inverted scaling; the same work). Reads the IDX
.gz files of the repository's data/ directory with numpy.

    /usr/bin/python3 pkg/deep/testdata/torch_epoch.py [--threads N] [--epochs E] [--batch B]

prints one line per epoch: seconds (training only) and test accuracy.

--activation sigmoid or tanh puts that activation in every layer instead of
relu (Nielsen's first chapter 6 networks; use with --eta 0.1 --lmbda 0
--dropout 0 for his sigmoid network). --init network3 draws the weights as
network3.py does (N(0, 1/n_out), conv n_out = filters·k²/pool², biases N(0, 1),
softmax zeros) instead of PyTorch's default, which leaves a sigmoid network at
chance after one epoch at η 0.1.
"""
import argparse
import gzip
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Net(nn.Module):
    def __init__(self, p, act):
        super().__init__()
        self.act = act
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 40, 5)
        self.drop = nn.Dropout(p)
        self.fc = nn.Linear(640, 100)
        self.out = nn.Linear(100, 10)

    def forward(self, x):
        x = F.max_pool2d(self.act(self.conv1(x)), 2)
        x = F.max_pool2d(self.act(self.conv2(x)), 2)
        x = self.drop(torch.flatten(x, 1))
        x = self.act(self.fc(x))
        return F.log_softmax(self.out(x), dim=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--eta", type=float, default=0.03)
    ap.add_argument("--lmbda", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--activation", choices=["relu", "sigmoid", "tanh"], default="relu")
    ap.add_argument("--init", choices=["torch", "network3"], default="torch")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "data"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    imgs = idx(os.path.join(a.data, "train-images-idx3-ubyte.gz"))[:50000]
    labels = idx(os.path.join(a.data, "train-labels-idx1-ubyte.gz"))[:50000]
    timgs = idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"))
    tlabels = idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(imgs.astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    tx = torch.from_numpy(timgs.astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    ty = torch.from_numpy(tlabels.astype(np.int64))
    net = Net(a.dropout, {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[a.activation])
    if a.init == "network3":
        with torch.no_grad():
            for layer, n_out in ((net.conv1, 20 * 25 / 4), (net.conv2, 40 * 25 / 4), (net.fc, 100)):
                layer.weight.normal_(0, (1 / n_out) ** 0.5)
                layer.bias.normal_(0, 1)
            net.out.weight.zero_()
            net.out.bias.zero_()
    n = x.shape[0]
    # network3's L2: cost + 0.5·λ/num_batches·Σw², weights only.
    decay = a.lmbda / (n // a.batch)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in net.named_parameters() if name.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": decay},
                           {"params": biases, "weight_decay": 0}], lr=a.eta)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {a.batch}, {a.activation}")
    for epoch in range(1, a.epochs + 1):
        net.train()
        start = time.perf_counter()
        perm = torch.randperm(n)
        for lo in range(0, n, a.batch):
            i = perm[lo:lo + a.batch]
            opt.zero_grad()
            loss = F.nll_loss(net(x[i]), y[i])
            loss.backward()
            opt.step()
        secs = time.perf_counter() - start
        net.eval()
        with torch.no_grad():
            correct = sum(int((net(tx[lo:lo + 1000]).argmax(1) == ty[lo:lo + 1000]).sum())
                          for lo in range(0, tx.shape[0], 1000))
        print(f"epoch {epoch}: {secs:.2f} s, accuracy {correct / tx.shape[0]:.4f}", flush=True)


if __name__ == "__main__":
    main()
