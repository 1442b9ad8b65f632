"""Train the example lottery tickets on sklearn's digits and save them into models/.

    python models/build_tickets.py                      # all three tickets (a few minutes)
    python models/build_tickets.py --only digits_scnn_binw_ticket --out /tmp/tickets

Writes, next to a JSON card ``NAME.json`` each:

* ``digits_scnn_ticket.pt`` (+ ``digits_scnn_ticket_masks.pkl``): the spiking CNN of
  ``build_digits_scnn.make_scnn()`` pruned by iterative magnitude pruning (IMP) with weight
  rewinding: train dense, then per round prune by layer-wise magnitude 40 % of the remaining
  weights of conv2 and the linear layer and 20 % of the small first conv, rewind the
  surviving weights (and BatchNorm) to their values after epoch 1 and retrain with the mask
  enforced after every optimizer step, until >= 90 % of the conv+linear weights are zero.
  Pruned weights are stored as exact zeros; the masks
  are also pickled as a list of numpy arrays, one per parameter whose name contains
  'weight' in ``named_parameters()`` order (BatchNorm weights as all-ones masks), 1 = kept
  (the ``mask_{k}.pkl`` format of published SNN lottery-ticket code).
* ``digits_scnn_binw_ticket.pt``: a binary-weight ticket (BinW-SLT / biprop style) of the
  same CNN: the IMP mask, and weights ``sign(W) * alpha_c * mask`` with alpha_c the mean
  |W| over the kept weights of output channel c, trained with a straight-through estimator
  for the sign (fine-tuned from the IMP ticket). The saved module holds the deployed weights
  in ordinary Conv2d/Linear ``.weight`` parameters.
* ``digits_spikformer_convpep.pt``: ``models.digits_arch.DigitsSpikformer`` (T=4) trained
  with cross-entropy; then the 4 least active of the 16 patches (mean ConvPEP spike rate on
  the training set) dropped by ``patch_mask``, the ConvPEP convolutions pruned (one-shot
  layer-wise magnitude, 91 % of their weights) and binarized (sign * alpha per output
  channel, STE), and the whole model fine-tuned with masks and patch mask in place. Saved as a state_dict
  (``--arch models.digits_arch:digits_spikformer``).

Whole-module checkpoints are nn.Sequential of torch / spikingjelly modules only (they load
with ``weights_only=True``), in eval mode with their trained BatchNorm statistics. Every
file is reloaded and re-evaluated before the script finishes. BatchNorm running statistics
are recalibrated on the whole training set at the end of every training phase. Seeded; runs single-threaded
(faster than 2 threads for these tiny layers, and bit-reproducible on CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import pickle
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from spikingjelly.activation_based import functional
from torch import nn
from torch.nn.utils import parametrize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from build_digits_scnn import make_scnn  # noqa: E402
from digits_data import SEED as SPLIT_SEED  # noqa: E402
from digits_data import TEST_FRACTION, digits_split  # noqa: E402

from models.digits_arch import DigitsSpikformer, digits_spikformer  # noqa: E402

SEED = 0
SCNN_STEPS = 8
SF_STEPS = 4
DATASET = (f"sklearn digits (8x8, 1797 images), {int(TEST_FRACTION * 100)}% stratified test split "
           f"(models/digits_data.py digits_split(), random_state={SPLIT_SEED}): 1257 train / 540 test; "
           "input: static image in [0, 1] repeated over T (direct encoding)")

# SCNN IMP recipe (each round = the recipe of build_digits_scnn.py: Adam 3e-3, cosine, MSE on rates)
SCNN_EPOCHS = 40          # dense training (= the dense baseline)
SCNN_ROUND_EPOCHS = 40    # retraining after each rewind (the dense recipe)
# per round: prune this fraction of the remaining weights of each group (magnitude ranked
# jointly within a group). The first conv (72 weights on the raw pixels) is pruned at half
# the rate; overall ~40 % of the remaining conv+linear weights a round.
SCNN_PRUNE_GROUPS: list[tuple[tuple[str, ...], float]] = [(("0",), 0.2), (("3",), 0.4), (("8",), 0.4)]
SCNN_TARGET = 0.90        # stop when at least this fraction of conv+linear weights is zero
REWIND_EPOCH = 1
BINW_EPOCHS = 40
BINW_LR = 1e-4            # BatchNorm parameters (low: the ticket is already trained)
BINW_LATENT_LR = 1e-4     # latent float weights behind the binary weights (fewer sign flips)

# Spikformer recipe
SF_EPOCHS = 60
SF_LR = 3e-3
# ConvPEP pruning (one-shot, layer-wise magnitude, from the trained dense weights): the
# first conv (144 weights on the raw pixels) is pruned less; 91 % of both convs together.
SF_SPARSITY = {"pep.stage1.0": 2 / 3, "pep.stage2.0": 0.92}
SF_FT_EPOCHS = 60
SF_FT_LR = 3e-3           # BatchNorm, attention, MLP, head
SF_FT_LATENT_LR = 3e-4    # latent float weights behind the binary ConvPEP convs (fewer sign flips)
SF_DROP_PATCHES = 4

console = Console()
NAMES = ("digits_scnn_ticket", "digits_scnn_binw_ticket", "digits_spikformer_convpep")


# ----------------------------------------------------------------------------- helpers

def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def data() -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(a) for a in digits_split())


def repeat(x: torch.Tensor, steps: int) -> torch.Tensor:
    return x.unsqueeze(0).repeat(steps, 1, 1, 1, 1)


def scnn_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(repeat(x, SCNN_STEPS)).mean(0)   # output firing rates
    functional.reset_net(model)
    return out


def sf_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(repeat(x, SF_STEPS))             # logits, already averaged over time
    functional.reset_net(model)
    return out


def scnn_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.mse_loss(out, nn.functional.one_hot(y, 10).float())


def sf_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out, y)


def accuracy(model: nn.Module, forward: Callable, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        acc = float((forward(model, x).argmax(1) == y).float().mean())
    model.train(was)
    return acc


def recalibrate_bn(model: nn.Module, forward: Callable, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to the exact statistics of the training set.

    One no-grad forward of the whole training set in train mode with cumulative averaging
    (momentum None): the running estimates of the last batches are noisy, and thresholded
    spiking layers (binary ones most) are sensitive to that noise at eval time."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    was = model.training
    model.train()
    with torch.no_grad():
        forward(model, x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.train(was)


def train(model: nn.Module, forward: Callable, loss_fn: Callable, epochs: int, lr: float,
          gen: torch.Generator, bar: Progress, label: str, data_: tuple,
          after_step: Callable[[], None] | None = None, weight_decay: float = 0.0,
          on_epoch: Callable[[int], None] | None = None,
          slow: list[torch.Tensor] = (), slow_lr: float = 0.0, recalibrate: bool = True) -> float:
    """Adam + cosine schedule, batch 64; ``after_step`` re-applies masks; the parameters in
    ``slow`` (latent weights of binary layers) get ``slow_lr``. BatchNorm statistics are
    recalibrated on the training set after the last epoch. Returns test accuracy."""
    xtr, ytr, xte, yte = data_
    slow_ids = {id(p) for p in slow}
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) not in slow_ids]}]
    if slow_ids:
        groups.append({"params": list(slow), "lr": slow_lr})
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    task = bar.add_task(label, total=epochs)
    acc = float("nan")
    for ep in range(epochs):
        model.train()
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            loss = loss_fn(forward(model, xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if after_step is not None:
                after_step()
        sched.step()
        if recalibrate and ep == epochs - 1:
            recalibrate_bn(model, forward, xtr)
        if on_epoch is not None:
            on_epoch(ep)
        acc = accuracy(model, forward, xte, yte)
        bar.update(task, advance=1, description=f"{label} (test acc {acc:.3f})")
    model.eval()
    return acc


def prunable(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d / Linear modules (by name) whose weights are pruned in the SCNN tickets."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def sparsity_table(layers: dict[str, nn.Module]) -> dict:
    """Zeros per Conv2d/Linear weight and overall (module name -> module)."""
    per, total, zeros = {}, 0, 0
    for name, mod in layers.items():
        w = mod.weight.detach()
        z = int((w == 0).sum())
        per[name] = {"module": type(mod).__name__, "shape": list(w.shape), "weights": w.numel(),
                     "zeros": z,
                     "nonzero": w.numel() - z, "sparsity": round(z / w.numel(), 4)}
        total += w.numel()
        zeros += z
    return {"per_layer": per, "overall": {"weights": total, "zeros": zeros, "nonzero": total - zeros,
                                          "sparsity": round(zeros / total, 4)}}


def magnitude_masks(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                    groups: list[tuple[tuple[str, ...], float]]) -> dict[str, torch.Tensor]:
    """Per group (layer names, fraction): prune that fraction of the group's currently kept
    weights with the smallest |w|, ranked jointly over the group (ties: lower index)."""
    out = {}
    for names, frac in groups:
        flat_w = torch.cat([weights[n].detach().abs().flatten() for n in names])
        keep = torch.cat([masks[n].flatten() for n in names])
        alive = keep.nonzero().squeeze(1)
        order = torch.argsort(flat_w[alive], stable=True)
        keep = keep.clone()
        keep[alive[order[:int(round(frac * len(alive)))]]] = False
        i = 0
        for n in names:
            k = weights[n].numel()
            out[n] = keep[i:i + k].view_as(masks[n])
            i += k
    return out


class _SignSTE(torch.autograd.Function):
    """sign with 0 -> +1 in the forward pass, identity (clipped to |w| <= 1) backward."""

    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * (w.abs() <= 1).to(g.dtype)


def binary_alpha(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """alpha per output channel: mean |W| over the kept weights of that channel (0 if none)."""
    m = mask.to(w.dtype).flatten(1)
    nnz = m.sum(1).clamp_min(1.0)
    return (w.flatten(1).abs() * m).sum(1) / nnz


class BinaryMasked(nn.Module):
    """Training-time parametrization: weight -> sign(W) * alpha_c * mask (STE on sign)."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.float32))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        alpha = binary_alpha(w, self.mask).view(-1, *([1] * (w.dim() - 1)))
        return _SignSTE.apply(w) * alpha * self.mask


def deployed_binary(w: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact deployed weights sign(W) * alpha_c * mask (float32) and alpha."""
    with torch.no_grad():
        alpha = binary_alpha(w, mask).to(torch.float32)
        sign = torch.where(w >= 0, 1.0, -1.0).to(torch.float32)
        out = sign * alpha.view(-1, *([1] * (w.dim() - 1))) * mask.to(torch.float32)
    return out, alpha


def binarize_modules(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    mods = dict(model.named_modules())
    for name, mask in masks.items():
        parametrize.register_parametrization(mods[name], "weight", BinaryMasked(mask))


def finalize_binary(model: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Remove the parametrizations and store the deployed weights in ``.weight``."""
    mods = dict(model.named_modules())
    alphas = {}
    for name, mask in masks.items():
        parametrize.remove_parametrizations(mods[name], "weight", leave_parametrized=False)
        w, alpha = deployed_binary(mods[name].weight.data, mask)
        mods[name].weight.data.copy_(w)
        alphas[name] = [float(a) for a in alpha]
    return alphas


def check_binary(w: torch.Tensor) -> bool:
    """Every nonzero weight of each output channel has exactly one magnitude."""
    return all(len(torch.unique(c.abs()[c != 0])) <= 1 for c in w)


def command(argv: list[str]) -> str:
    return " ".join(["python", "models/build_tickets.py", *map(shlex.quote, argv)])


def write_card(out: Path, name: str, card: dict) -> None:
    (out / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")


def file_size(path: Path) -> int:
    size = path.stat().st_size
    if size >= 2 * 1024 * 1024:
        raise SystemExit(f"{path} is {size} bytes, over the 2 MB limit")
    return size


# ----------------------------------------------------------------------------- SCNN tickets

_imp_cache: dict | None = None


def scnn_imp(bar: Progress, data_: tuple, seed: int) -> dict:
    """Dense training + IMP with rewinding to epoch 1. Cached: both SCNN tickets use it."""
    global _imp_cache
    if _imp_cache is not None:
        return _imp_cache
    gen = seed_all(seed)
    model = make_scnn()
    functional.set_step_mode(model, "m")
    rewind: dict[str, torch.Tensor] = {}

    def snapshot(ep: int) -> None:
        if ep + 1 == REWIND_EPOCH:
            rewind.update(copy.deepcopy(model.state_dict()))

    dense_acc = train(model, scnn_logits, scnn_loss, SCNN_EPOCHS, 3e-3, gen, bar,
                      "digits_scnn dense", data_, on_epoch=snapshot)
    layers = prunable(model)
    masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in layers.items()}
    total = sum(m.numel() for m in masks.values())
    rounds = [{"round": 0, "sparsity": 0.0, "test_accuracy": round(dense_acc, 4),
               "epochs": SCNN_EPOCHS}]
    r = 0
    while 1 - sum(int(m.sum()) for m in masks.values()) / total < SCNN_TARGET:
        r += 1
        masks = magnitude_masks({n: m.weight for n, m in layers.items()}, masks,
                                SCNN_PRUNE_GROUPS)
        model.load_state_dict(rewind)
        layers = prunable(model)

        def enforce(layers: dict = layers, masks: dict = masks) -> None:
            with torch.no_grad():
                for n, m in layers.items():
                    m.weight.mul_(masks[n])

        enforce()
        sp = 1 - sum(int(m.sum()) for m in masks.values()) / total
        acc = train(model, scnn_logits, scnn_loss, SCNN_ROUND_EPOCHS, 3e-3, gen, bar,
                    f"IMP round {r} ({sp:.1%} sparse)", data_, after_step=enforce)
        rounds.append({"round": r, "sparsity": round(sp, 4), "test_accuracy": round(acc, 4),
                       "epochs": SCNN_ROUND_EPOCHS})
    model.eval()
    _imp_cache = {"model": model, "masks": masks, "dense_acc": dense_acc, "acc": rounds[-1]["test_accuracy"],
                  "rounds": rounds, "seed": seed}
    return _imp_cache


def scnn_masks_list(model: nn.Module, masks: dict[str, torch.Tensor]) -> list[np.ndarray]:
    out = []
    for pname, p in model.named_parameters():
        if "weight" not in pname:
            continue
        owner = pname.rsplit(".", 1)[0]
        m = masks.get(owner) if pname.endswith(".weight") else None
        out.append(m.numpy().astype(np.float32) if m is not None else np.ones(p.shape, np.float32))
    return out


def build_scnn_ticket(out: Path, bar: Progress, data_: tuple, seed: int, argv: list[str]) -> dict:
    name = "digits_scnn_ticket"
    imp = scnn_imp(bar, data_, seed)
    model = imp["model"]
    path = out / f"{name}.pt"
    torch.save({"model": model, "input_shape": [1, 8, 8], "steps": SCNN_STEPS, "name": name}, path)
    mask_list = scnn_masks_list(model, imp["masks"])
    with open(out / f"{name}_masks.pkl", "wb") as fh:
        pickle.dump(mask_list, fh, protocol=4)
    card = {
        "model": name, "architecture": "models/build_digits_scnn.py make_scnn() (Conv-BN-LIF x2, "
        "MaxPool, Linear-LIF), whole nn.Sequential pickled", "dataset": DATASET,
        "steps": SCNN_STEPS, "test_samples": int(len(data_[3])),
        "dense_test_accuracy": round(imp["dense_acc"], 4), "test_accuracy": imp["acc"],
        "sparsity": sparsity_table(prunable(model)),
        "masks_file": f"{name}_masks.pkl",
        "masks_format": "pickled list of numpy float32 arrays (1 = kept), one per parameter whose "
                        "name contains 'weight' in named_parameters() order: "
                        + ", ".join(n for n, _ in model.named_parameters() if "weight" in n)
                        + " (BatchNorm weights all ones)",
        "pruning": {
            "method": "iterative magnitude pruning with weight rewinding",
            "scope": "layer-wise magnitude (weights ranked by |w| within each group of layers)",
            "prune_fraction_per_round": {"+".join(g): f for g, f in SCNN_PRUNE_GROUPS},
            "target_sparsity": SCNN_TARGET,
            "rewind": f"all parameters and BatchNorm statistics to their values after epoch "
                      f"{REWIND_EPOCH} of dense training; fresh optimizer per round",
            "mask_enforcement": "pruned weights zeroed after every optimizer step",
            "rounds": imp["rounds"],
        },
        "training": {"optimizer": "Adam lr 3e-3, cosine annealing, batch 64",
                     "loss": "MSE between output firing rates (mean over T) and one-hot targets",
                     "dense_epochs": SCNN_EPOCHS, "epochs_per_round": SCNN_ROUND_EPOCHS,
                     "batchnorm": "running statistics recalibrated on the whole training set "
                                  "after each training phase (dense baseline included)"},
        "seed": seed, "command": command(argv),
    }
    return {"name": name, "path": path, "card": card, "forward": scnn_logits, "whole": True,
            "binary_layers": []}


def build_scnn_binw(out: Path, bar: Progress, data_: tuple, seed: int, argv: list[str]) -> dict:
    name = "digits_scnn_binw_ticket"
    imp = scnn_imp(bar, data_, seed)
    gen = seed_all(seed + 1)
    model = copy.deepcopy(imp["model"])
    masks = {n: m.clone() for n, m in imp["masks"].items()}
    binarize_modules(model, masks)
    start_acc = accuracy(model, scnn_logits, data_[2], data_[3])
    slow = [m.parametrizations.weight.original for m in prunable(model).values()]
    acc = train(model, scnn_logits, scnn_loss, BINW_EPOCHS, BINW_LR, gen, bar,
                "binary-weight fine-tune", data_, slow=slow, slow_lr=BINW_LATENT_LR)
    alphas = finalize_binary(model, masks)
    model.eval()
    acc = accuracy(model, scnn_logits, data_[2], data_[3])
    path = out / f"{name}.pt"
    torch.save({"model": model, "input_shape": [1, 8, 8], "steps": SCNN_STEPS, "name": name}, path)
    card = {
        "model": name, "architecture": "models/build_digits_scnn.py make_scnn(), whole nn.Sequential "
        "pickled; conv/linear .weight hold the deployed weights sign(W)*alpha_c*mask",
        "dataset": DATASET, "steps": SCNN_STEPS, "test_samples": int(len(data_[3])),
        "dense_test_accuracy": round(imp["dense_acc"], 4), "test_accuracy": round(acc, 4),
        "sparsity": sparsity_table(prunable(model)),
        "binary": {
            "layers": list(masks), "alpha_granularity": "per output channel",
            "alpha_definition": "alpha_c = mean |W| over the kept weights of output channel c "
                                "(0 for a channel with no kept weight)",
            "alpha": alphas,
        },
        "pruning": {
            "method": "mask of digits_scnn_ticket (iterative magnitude pruning with rewinding, "
                      "see digits_scnn_ticket.json), then binary-weight training from the ticket",
            "imp_rounds": imp["rounds"],
            "test_accuracy_after_binarizing_before_finetune": round(start_acc, 4),
        },
        "training": {"optimizer": f"Adam lr {BINW_LR} (latent weights {BINW_LATENT_LR}), cosine "
                                  "annealing, batch 64",
                     "loss": "MSE between output firing rates and one-hot targets",
                     "epochs": BINW_EPOCHS,
                     "batchnorm": "running statistics recalibrated on the whole training set "
                                  "after training",
                     "estimator": "straight-through for sign (gradient passed where |W| <= 1); "
                                  "alpha differentiable; latent float weights discarded at save"},
        "seed": seed, "command": command(argv),
    }
    return {"name": name, "path": path, "card": card, "forward": scnn_logits, "whole": True,
            "binary_layers": list(masks)}


# ----------------------------------------------------------------------------- Spikformer

PEP_CONVS = ("pep.stage1.0", "pep.stage2.0")


def patch_activity(model: DigitsSpikformer, x: torch.Tensor) -> torch.Tensor:
    """Mean ConvPEP spike rate per patch (over T, images and channels) on ``x``."""
    model.eval()
    with torch.no_grad():
        tokens = model.pep(repeat(x, SF_STEPS))          # [T, B, N, D]
        functional.reset_net(model)
    return tokens.mean(dim=(0, 1, 3))


def build_spikformer(out: Path, bar: Progress, data_: tuple, seed: int, argv: list[str]) -> dict:
    name = "digits_spikformer_convpep"
    xtr = data_[0]
    gen = seed_all(seed)
    model = digits_spikformer()
    dense_acc = train(model, sf_logits, sf_loss, SF_EPOCHS, SF_LR, gen, bar,
                      "digits_spikformer dense", data_)

    # patch keep-mask: drop the patches with the lowest ConvPEP activity on the training set
    activity = patch_activity(model, xtr)
    order = torch.argsort(activity, stable=True)
    dropped = sorted(int(i) for i in order[:SF_DROP_PATCHES])
    patch_mask = torch.ones_like(model.patch_mask)
    patch_mask[dropped] = 0.0
    model.patch_mask.copy_(patch_mask)
    masked_acc = accuracy(model, sf_logits, data_[2], data_[3])

    # one-shot layer-wise magnitude pruning + binarization of the ConvPEP convolutions,
    # then fine-tuning (latent weights of the binary convs at a lower learning rate)
    mods = dict(model.named_modules())
    ones = {n: torch.ones_like(mods[n].weight, dtype=torch.bool) for n in PEP_CONVS}
    masks = magnitude_masks({n: mods[n].weight for n in PEP_CONVS}, ones,
                            [((n,), f) for n, f in SF_SPARSITY.items()])
    binarize_modules(model, masks)
    binarized_acc = accuracy(model, sf_logits, data_[2], data_[3])
    slow = [mods[n].parametrizations.weight.original for n in PEP_CONVS]
    acc = train(model, sf_logits, sf_loss, SF_FT_EPOCHS, SF_FT_LR, gen, bar,
                "ConvPEP pruned+binarized fine-tune", data_, slow=slow, slow_lr=SF_FT_LATENT_LR)
    steps = [{"step": "dense training", "epochs": SF_EPOCHS, "test_accuracy": round(dense_acc, 4)},
             {"step": f"patch mask (drop {dropped}), no fine-tune", "test_accuracy": round(masked_acc, 4)},
             {"step": "prune ConvPEP (one-shot magnitude, layer-wise) + binarize, no fine-tune",
              "sparsity": {n: round(1 - float(masks[n].float().mean()), 4) for n in PEP_CONVS},
              "test_accuracy": round(binarized_acc, 4)},
             {"step": "fine-tune with masks, binary ConvPEP and patch mask in place",
              "epochs": SF_FT_EPOCHS, "test_accuracy": round(acc, 4)}]
    alphas = finalize_binary(model, masks)
    model.eval()
    acc = accuracy(model, sf_logits, data_[2], data_[3])
    path = out / f"{name}.pt"
    torch.save({"state_dict": model.state_dict(), "input_shape": [1, 8, 8], "steps": SF_STEPS,
                "name": name, "arch": "models.digits_arch:digits_spikformer"}, path)
    card = {
        "model": name,
        "architecture": "models.digits_arch:digits_spikformer (DigitsSpikformer dim 32, depth 1: "
                        "ConvPEP, SSA, MLP, linear head); checkpoint holds a state_dict, load with "
                        "--arch models.digits_arch:digits_spikformer",
        "dataset": DATASET, "steps": SF_STEPS, "test_samples": int(len(data_[3])),
        "dense_test_accuracy": round(dense_acc, 4), "test_accuracy": round(acc, 4),
        "sparsity": sparsity_table({n: mods[n] for n in PEP_CONVS}),
        "sparsity_all_conv_linear": sparsity_table(prunable(model))["overall"],
        "binary": {"layers": list(PEP_CONVS), "alpha_granularity": "per output channel",
                   "alpha_definition": "alpha_c = mean |W| over the kept weights of output channel c",
                   "alpha": alphas},
        "patch_mask": [int(v) for v in model.patch_mask.flatten()],
        "patch_grid": "4x4 patches, row-major (patch i covers pixels rows 2*(i//4)..+1, "
                      "cols 2*(i%4)..+1 of the 8x8 image)",
        "kept_patches": [i for i in range(len(patch_mask)) if patch_mask[i] > 0],
        "dropped_patches": dropped,
        "patch_selection": "the 4 patches with the lowest mean ConvPEP spike rate on the training "
                           "set (dense model); fine-tuned with the mask in place",
        "patch_activity": [round(float(a), 4) for a in activity],
        "pruning": {"method": "one-shot layer-wise magnitude pruning of the trained ConvPEP "
                              "convolutions, binarized and fine-tuned (no rewinding); the other "
                              "layers stay dense float",
                    "target_sparsity": {n: round(f, 4) for n, f in SF_SPARSITY.items()},
                    "steps": steps},
        "training": {"dense": f"Adam lr {SF_LR}, cosine annealing, batch 64, {SF_EPOCHS} epochs, "
                              "cross-entropy on the time-averaged logits",
                     "fine_tune": f"Adam lr {SF_FT_LR} (latent ConvPEP weights {SF_FT_LATENT_LR}), "
                                  f"cosine annealing, {SF_FT_EPOCHS} epochs; STE for sign (gradient "
                                  "passed where |W| <= 1), alpha differentiable",
                     "batchnorm": "running statistics recalibrated on the whole training set "
                                  "after each training phase"},
        "seed": seed, "command": command(argv),
    }
    return {"name": name, "path": path, "card": card, "forward": sf_logits, "whole": False,
            "binary_layers": list(PEP_CONVS)}


# ----------------------------------------------------------------------------- verification

def verify(res: dict, data_: tuple) -> list[str]:
    """Reload the file, re-evaluate, check pickle globals, sparsity and binary magnitudes."""
    path, card = res["path"], res["card"]
    problems = []
    obj = torch.load(path, weights_only=False)
    if res["whole"]:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        bad = [g for g in unsafe if not g.startswith(("torch.nn.", "spikingjelly.activation_based.",
                                                      "collections.OrderedDict", "torch._utils"))]
        if bad:
            problems.append(f"non-torch globals in pickle: {bad}")
        model = obj["model"]
    else:
        model = DigitsSpikformer()
        model.load_state_dict(obj["state_dict"])
        model.eval()
    if model.training:
        problems.append("saved in training mode")
    acc = accuracy(model, res["forward"], data_[2], data_[3])
    if round(acc, 4) != card["test_accuracy"]:
        problems.append(f"reloaded accuracy {acc:.4f} != card {card['test_accuracy']}")
    mods = dict(model.named_modules())
    for n, row in card["sparsity"]["per_layer"].items():
        z = int((mods[n].weight == 0).sum())
        if z != row["zeros"]:
            problems.append(f"{n}: {z} zeros, card says {row['zeros']}")
    for n in res["binary_layers"]:
        if not check_binary(mods[n].weight.detach()):
            problems.append(f"{n}: more than one magnitude in an output channel")
    if res["name"] == "digits_scnn_ticket":
        with open(path.with_name(f"{res['name']}_masks.pkl"), "rb") as fh:
            masks = pickle.load(fh)
        params = [p for pn, p in model.named_parameters() if "weight" in pn]
        if len(masks) != len(params) or any(m.shape != tuple(p.shape) for m, p in zip(masks, params)):
            problems.append("mask list does not match named_parameters()")
        elif any(bool(((p.detach().numpy() != 0) & (m == 0)).any()) for m, p in zip(masks, params)):
            problems.append("a masked weight is nonzero")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=NAMES, help="build only this ticket")
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: models/)")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    argv = sys.argv[1:]
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)
    data_ = data()
    builders = {"digits_scnn_ticket": build_scnn_ticket, "digits_scnn_binw_ticket": build_scnn_binw,
                "digits_spikformer_convpep": build_spikformer}
    t0 = time.time()
    failed = False
    with progress() as bar:
        for name, build in builders.items():
            if args.only and name != args.only:
                continue
            res = build(args.out, bar, data_, args.seed, argv)
            res["card"]["checkpoint_bytes"] = file_size(res["path"])
            write_card(args.out, name, res["card"])
            problems = verify(res, data_)
            c = res["card"]
            status = "[green]verified[/]" if not problems else "[red]" + "; ".join(problems) + "[/]"
            failed |= bool(problems)
            bar.console.print(f"{res['path']}: dense {c['dense_test_accuracy']:.4f} → ticket "
                              f"{c['test_accuracy']:.4f}, sparsity "
                              f"{c['sparsity']['overall']['sparsity']:.1%} ({status})")
    console.print(f"done in {time.time() - t0:.0f} s")
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
