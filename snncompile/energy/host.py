"""Energy of host partitions (operations off the neuromorphic cores, on the chip's embedded CPU
or the host), with the costs' sources. The host is a processor, whatever chip cost model
prices the cores: its operations are priced at 45 nm FP32 figures in every report.

- MAC 4.6 pJ: FP32 multiply 3.7 + add 0.9 (Horowitz, ISSCC 2014) — a lower bound for a CPU,
  which also spends energy on instruction fetch and control.
- comparison 0.9 pJ: one FP32 add (UNVERIFIED as a table cell: a compare costed as an add, as
  the 45nm cost model does for thresholds).
- transcendental (erf, exp) 8 MACs = 36.8 pJ: a degree-7 polynomial by Horner's rule
  (DERIVED, no measured figure).
- transfer 50 pJ per 32-bit value crossing the core/host boundary: half a 64-bit access of a
  1 MB SRAM, 100 pJ (Horowitz, ISSCC 2014) — the embedded CPU reads and writes the cores'
  values through on-chip memory; a host off the chip pays DRAM-class costs (1300–2600 pJ per
  64-bit access), which this figure does not include.
"""

from __future__ import annotations

from snncompile.energy.counts import HostCount

HOST_COSTS: dict[str, float] = {"mac": 4.6, "cmp": 0.9, "transcendental": 8 * 4.6, "transfer": 50.0}
HOST_SOURCE = ("M. Horowitz, ISSCC 2014: FP32 MULT 3.7 pJ, ADD 0.9 pJ, 1 MB SRAM 64-bit access 100 pJ; "
               "compare = FP32 add (UNVERIFIED); erf/exp = 8 MACs (DERIVED)")


def host_operations(hc: HostCount, steps: int) -> tuple[int, int, int, int]:
    """(MACs, comparisons, transcendentals, values crossing the boundary) per sample over
    ``steps`` steps: what is the same at every step (``once``, ``out_once``) counts once."""
    n = 1 if hc.once else steps
    return (hc.macs * n, hc.comparisons * n, hc.transcendentals * n,
            hc.values_in * n + hc.values_out * (1 if hc.out_once else steps))


def host_energy(hc: HostCount, steps: int, transfers: bool) -> dict[str, float]:
    """pJ per sample over ``steps`` steps by part; ``transfers``: the values cross the core/host
    boundary (the spiking variants; an ANN runs everything on one processor, one pass: steps 1)."""
    macs, cmps, trans, moved = host_operations(hc, steps)
    return {"mac": macs * HOST_COSTS["mac"], "cmp": cmps * HOST_COSTS["cmp"],
            "transcendental": trans * HOST_COSTS["transcendental"],
            "transfer": moved * HOST_COSTS["transfer"] if transfers else 0.0}
