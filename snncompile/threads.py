"""torch's intra-op threads, set to one around work made of many small operations.

The lowering, the energy estimate and the per-layer guard run hundreds of operations on
batch-1 maps (a bias map, a 0/1 pattern, a probe of a few kernel windows). Waking torch's
thread pool for each costs more than the work: on a loaded 2-core machine the estimate of
ResNet-18 at 224 px took 26-38 ms with 2 threads and 10-12 ms with one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block (or, as ``@one_thread()``, the function) on one torch thread; the
    caller's setting is restored after, also on an error."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
