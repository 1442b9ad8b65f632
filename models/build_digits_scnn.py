"""Train the example spiking CNN on sklearn's digits and save it.

    python models/build_digits_scnn.py          # writes models/digits_scnn.pt, digits_test.npz

Conv-BN-LIF, Conv-BN-LIF, MaxPool, Linear-LIF; T=8 steps of the static image (direct
encoding); rate-coded output trained with MSE against one-hot targets (spikingjelly's
tutorial recipe). Seeded and deterministic on CPU; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from digits_data import digits_split  # noqa: E402

STEPS = 8


def make_scnn() -> nn.Sequential:
    """The architecture (also usable as ``--arch models.build_digits_scnn:make_scnn``)."""
    sg = surrogate.ATan()
    return nn.Sequential(
        layer.Conv2d(1, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8),
        neuron.LIFNode(tau=2.0, surrogate_function=sg, detach_reset=True),
        layer.Conv2d(8, 16, 3, padding=1, bias=False), layer.BatchNorm2d(16),
        neuron.LIFNode(tau=2.0, surrogate_function=sg, detach_reset=True),
        layer.MaxPool2d(2), layer.Flatten(),
        layer.Linear(16 * 4 * 4, 10),
        neuron.LIFNode(tau=2.0, surrogate_function=sg, detach_reset=True),
    )


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        fr = model(x.unsqueeze(0).repeat(STEPS, 1, 1, 1, 1)).mean(0)
        functional.reset_net(model)
    return float((fr.argmax(1) == y).float().mean())


def train(epochs: int = 40, seed: int = 0) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(2)
    xtr, ytr, xte, yte = (torch.as_tensor(a) for a in digits_split())
    model = make_scnn()
    functional.set_step_mode(model, "m")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    with Progress() as bar:
        task = bar.add_task("training digits_scnn", total=epochs)
        for _ in range(epochs):
            model.train()
            for idx in torch.randperm(len(xtr), generator=gen).split(64):
                xb = xtr[idx].unsqueeze(0).repeat(STEPS, 1, 1, 1, 1)
                fr = model(xb).mean(0)
                loss = nn.functional.mse_loss(fr, nn.functional.one_hot(ytr[idx], 10).float())
                opt.zero_grad()
                loss.backward()
                opt.step()
                functional.reset_net(model)
            sched.step()
            bar.update(task, advance=1, description=f"training digits_scnn (test acc "
                                                    f"{evaluate(model, xte, yte):.3f})")
    return model, evaluate(model, xte, yte)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    model, acc = train(args.epochs)
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "input_shape": [1, 8, 8], "steps": STEPS, "name": "digits_scnn"},
               args.out / "digits_scnn.pt")
    _, _, xte, yte = digits_split()
    np.savez_compressed(args.out / "digits_test.npz", x=xte, y=yte)
    card = {"model": "digits_scnn", "dataset": "sklearn digits (8x8), 30% stratified test split, seed 0",
            "steps": STEPS, "test_accuracy": round(acc, 4), "test_samples": int(len(yte))}
    (args.out / "digits_scnn.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"saved {args.out / 'digits_scnn.pt'}: test accuracy {acc:.4f} on {len(yte)} images")


if __name__ == "__main__":
    main()
