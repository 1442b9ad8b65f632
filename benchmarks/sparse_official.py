"""Issue 24's closing note: the official SparseSpikformer eval forward (our definition after the published
code, ``tests/corpus/sparse_official.py``) compiled as shipped at CIFAR size, T = 4, 90 % of weights pruned.

    python -m benchmarks.sparse_official [--dim 384 --heads 12] [--samples 4] [--lava] [--json]

Prints, on random CIFAR-size images (BatchNorm calibrated on them so layers fire at trained rates):
spike agreement of the reference simulator with PyTorch (every neuron layer, those after the selectors
included) and, with ``--lava``, of the staged fused Lava run; SOPs and ANN MACs with the selectors and
with the same weights keeping every token (``token_ratio`` 1: the argsort then permutes all 64 tokens,
which attention and the token mean do not see); the host partitions' share of the SNN energy.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def _model(dim: int, heads: int, ratio: list[float] | None, seed: int = 0):
    from tests.corpus.host import prune_
    from tests.corpus.sparse_official import SparseSpikformerOfficial

    torch.manual_seed(seed)
    return prune_(SparseSpikformerOfficial(dim=dim, heads=heads, token_ratio=ratio))


def _figures(model, img: np.ndarray, T: int) -> dict:
    import snncompile

    d = snncompile.compile(model, "energy", input=img, steps=T).to_dict()
    snn, ann = d["energy"]["variants"]["snn"], d["energy"]["variants"]["ann"]
    after = sum(r["sops"] or 0 for r in d["energy"]["layers"]
                if r.get("sops") is not None and r.get("source", "").startswith(("block.1", "block.2", "block.3")))
    return {"sops": snn["sops"], "sops_after_first_selector": after, "ann_macs": ann["macs"],
            "snn_pj": snn["energy_pj"], "host_pj": snn["breakdown_pj"]["host"],
            "host_share": snn["breakdown_pj"]["host"] / snn["energy_pj"], "notes": d.get("notes", [])}


def _agreement(model, x: np.ndarray, lava: bool) -> dict:
    from snncompile.compare import spike_agreement
    from snncompile.frontend import trace_model
    from snncompile.lower import lower
    from snncompile.sim import run_torch, simulate

    tr = trace_model(model, tuple(x.shape[2:]))
    tor = run_torch(model, x, tr.step_mode, list(tr.neuron_sources.values()), tr.graph.output_time_reduced)
    torch_spikes = {n: tor.spikes[p] for n, p in tr.neuron_sources.items()}
    ref = simulate(tr.graph, x)
    out = {"layers": len(torch_spikes), "reference": spike_agreement(torch_spikes, ref.spikes)[0],
           "logits_max_abs_diff": float(np.abs(ref.output.mean(0) - tor.output).max())}
    if lava:
        from backends.lava import run_lava

        run = run_lava(lower(tr.graph), x, timeout_s=1800)
        out["lava"] = spike_agreement(torch_spikes, run.spikes)[0]
        out["lava_run_s"] = round(run.wall_s, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--lava", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from tests.corpus.host import calibrate_bn_

    T = 4
    img = np.random.default_rng(0).random((a.samples, 3, 32, 32)).astype(np.float32)
    res = {"dim": a.dim, "heads": a.heads, "samples": a.samples, "T": T}
    model = calibrate_bn_(_model(a.dim, a.heads, None), torch.from_numpy(img))
    res["selector"] = _figures(model, img, T)
    res["agreement"] = _agreement(model, np.broadcast_to(img[None], (T, *img.shape)), a.lava)
    # the same weights and BatchNorm statistics (calibrating again would measure them on every token)
    every = _model(a.dim, a.heads, [1.0, 1.0, 1.0])
    every.load_state_dict(model.state_dict())
    res["every_token"] = _figures(every.eval(), img, T)
    sel, every = res["selector"], res["every_token"]
    res["sops_saving"] = 1 - sel["sops"] / every["sops"]
    res["ann_mac_saving"] = 1 - sel["ann_macs"] / every["ann_macs"]
    if a.json:
        print(json.dumps(res, indent=1))
        return
    ag = res["agreement"]
    print(f"SparseSpikformer (official eval forward), CIFAR 32 px, dim {a.dim}, {a.heads} heads, 4 blocks, T = {T}, "
          f"{a.samples} samples, 90 % pruned")
    print(f"  spike agreement vs PyTorch ({ag['layers']} layers): reference {ag['reference']:.6f}"
          + (f", staged Lava {ag['lava']:.6f} ({ag['lava_run_s']} s)" if "lava" in ag else "")
          + f"; logits max |diff| {ag['logits_max_abs_diff']:.2e}")
    print(f"  SOPs/sample: {sel['sops']:,.0f} with the selectors, {every['sops']:,.0f} keeping every token "
          f"(−{res['sops_saving']:.1%}); blocks 1–3: {sel['sops_after_first_selector']:,.0f} vs "
          f"{every['sops_after_first_selector']:,.0f}")
    print(f"  ANN MACs/sample: {sel['ann_macs']:,.0f} vs {every['ann_macs']:,.0f} (−{res['ann_mac_saving']:.1%})")
    print(f"  host partitions: {sel['host_pj'] / 1e6:.2f} µJ of {sel['snn_pj'] / 1e6:.2f} µJ "
          f"({sel['host_share']:.1%} of the SNN energy; every token: {every['host_share']:.1%})")


if __name__ == "__main__":
    main()
