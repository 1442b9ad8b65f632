"""Load user inputs (.npy / .npz frames, or event streams: see :mod:`snncompile.events`) and
shape them as time-major [T, N, ...] sequences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snncompile import events
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.limits import check_array_file, check_regular_file
from snncompile.schema import numeric_array, reading_arrays


@dataclass
class InputData:
    x: np.ndarray             # static [N, *shape] or sequence [T, N, *shape]
    y: np.ndarray | None      # labels [N], if the file has them
    sequence: bool            # True when x already has a time axis
    path: Path
    events: bool = False      # x was binned from event streams

    @property
    def samples(self) -> int:
        return self.x.shape[1] if self.sequence else self.x.shape[0]

    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[2:] if self.sequence else self.x.shape[1:])

    def take(self, n: int | None) -> InputData:
        if n is None:
            return self
        if n > self.samples:
            raise SnnCompileError(f"--samples {n} but {self.path} has {self.samples} samples",
                                  f"use --samples {self.samples} or fewer (or drop --samples)", EXIT_USAGE)
        x = self.x[:, :n] if self.sequence else self.x[:n]
        return InputData(x, None if self.y is None else self.y[:n], self.sequence, self.path, self.events)

    def as_sequence(self, steps: int) -> np.ndarray:
        if self.sequence:
            return self.x
        return np.broadcast_to(self.x[None], (steps, *self.x.shape))


def load_inputs(path: str | Path, input_shape: tuple[int, ...] | None, time_axis: int = 0,
                binning: events.Binning | None = None) -> InputData:
    """Read ``x`` (and ``y``) from .npy or .npz, or event streams (.npy/.npz structured arrays,
    .aedat4) binned by ``binning``; decide static vs sequence by rank.
    ``time_axis``: where time is in a sequence, 0 for ``[T, N, ...]``, 1 for batch-first
    ``[N, T, ...]`` (stored time-major here)."""
    binning = binning or events.Binning()
    path = check_regular_file(path, "input file")
    if not path.exists():
        raise SnnCompileError(f"input file not found: {path}",
                              "pass a .npy array, an .npz with keys x (and y), or events (.npy/.npz/.aedat4)",
                              EXIT_USAGE)
    if events.is_event_file(path):
        recs, declared = events.read_aedat4(path)
        return event_inputs(recs, None, input_shape, binning, path, declared)
    if path.suffix.lower() not in (".npy", ".npz"):
        raise SnnCompileError(f"input file {path} is not a .npy, .npz or .aedat4 file",
                              "save the inputs with np.save(path.npy, x) or np.savez(path.npz, x=x, y=y)",
                              EXIT_USAGE)
    check_array_file(path, "input file")
    with reading_arrays(path, "input file", fix="store numeric arrays: a .npy array or an .npz with keys "
                        "x (and y), e.g. np.savez(path, x=x.astype(np.float32), y=y)"):
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            if events.is_events(data):
                return event_inputs([data], None, input_shape, binning, path)
            x, y = data, None
        else:
            with data:
                found = events.recordings_from_npz(path, data.files, data)
                if found is not None:
                    return event_inputs(found[0], found[1], input_shape, binning, path, found[2])
                if "x" not in data.files:
                    raise SnnCompileError(f"{path} has no array named 'x' (it has: "
                                          f"{', '.join(data.files) or 'nothing'})",
                                          "save inputs with np.savez(path, x=..., y=...), or events as "
                                          "np.savez(path, events_0=..., events_1=..., y=...)", EXIT_USAGE)
                x = data["x"]
                y = data["y"] if "y" in data.files else None
    _no_binning(path, binning)
    return from_arrays(x, y, input_shape, path, time_axis)


def _no_binning(path: Path, binning: events.Binning) -> None:
    if binning.given:
        raise SnnCompileError(f"--event-frames/--event-window/--event-count bin event streams, but {path} holds "
                              "frames, not events (a structured array with fields t, x, y, p)",
                              "drop the event option, or pass an event file", EXIT_USAGE)


def event_inputs(recs: list, y: np.ndarray | None, input_shape: tuple[int, ...] | None,
                 binning: events.Binning, path: Path = Path("<events>"),
                 declared: tuple[int, int, int] | None = None) -> InputData:
    """Event recordings binned into frames [T, N, P, H, W] and checked as a time-major sequence."""
    x = events.bin_recordings(str(path), recs, binning, input_shape, declared)
    data = from_arrays(x, y, input_shape or tuple(x.shape[2:]), path)
    data.events = True
    return data


def from_arrays(x: np.ndarray, y: np.ndarray | None, input_shape: tuple[int, ...] | None,
                path: Path = Path("<input array>"), time_axis: int = 0) -> InputData:
    """Inputs given as arrays (read from a file, or passed to the Python API): checked like
    a file's; static vs sequence decided by rank; ``path`` names them in messages."""
    x = numeric_array(str(path), x, "x", fix="store the inputs as numbers").astype(np.float64)
    if x.ndim < 2 or x.shape[0] == 0:
        raise SnnCompileError(f"{path} has no samples (x has shape {x.shape})",
                              "store x as [N, ...] with N >= 1 (or [T, N, ...])", EXIT_USAGE)
    if input_shape is None:
        sequence = False
    elif tuple(x.shape[1:]) == tuple(input_shape):
        sequence = False
    elif tuple(x.shape[2:]) == tuple(input_shape):
        sequence = True
    else:
        raise SnnCompileError(f"inputs in {path} have shape {x.shape}; the model takes per-sample "
                              f"shape {tuple(input_shape)}",
                              f"store x as [N, {', '.join(map(str, input_shape))}] (static) or "
                              f"[T, N, {', '.join(map(str, input_shape))}] (time-major sequence)",
                              EXIT_USAGE)
    if input_shape is not None:
        x = _time_major(path, x, y, sequence, tuple(input_shape), time_axis)
    data = InputData(x, None, sequence, path)
    if data.samples == 0:
        raise SnnCompileError(f"{path} has no samples (x has shape {x.shape})",
                              "store at least one sample", EXIT_USAGE)
    if y is not None:
        y = np.asarray(y).reshape(-1)
        integral = np.issubdtype(y.dtype, np.integer) or (
            np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all())
        if not integral or (y.size and y.min() < 0):
            raise SnnCompileError(f"{path}: labels y must be class indices (integers >= 0), got dtype "
                                  f"{y.dtype} {y[:3].tolist()}", "store y as integer class indices, "
                                  "e.g. y = np.array([3, 1, 4])", EXIT_USAGE)
        if len(y) != data.samples:
            raise SnnCompileError(f"{path}: {len(y)} labels for {data.samples} samples",
                                  "y must hold one class index per sample", EXIT_USAGE)
        data.y = y.astype(np.int64)
    return data


def _time_major(path: Path, x: np.ndarray, y: np.ndarray | None, sequence: bool, input_shape: tuple[int, ...],
                time_axis: int) -> np.ndarray:
    """``x`` with time first (``time_axis`` 1: stored [N, T, ...]); a sequence whose labels
    count the other axis is refused."""
    if time_axis == 1:
        if not sequence:
            raise SnnCompileError(f"--time-axis 1 but the inputs in {path} (shape {x.shape}) have no time axis "
                                  f"for per-sample shape {input_shape}",
                                  "store x as [N, T, ...] for --time-axis 1, or drop --time-axis", EXIT_USAGE)
        x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    if sequence and y is not None:
        _check_time_axis(path, x.shape, len(np.asarray(y).reshape(-1)), time_axis)
    return x


def _check_time_axis(path: Path, shape: tuple[int, ...], labels: int, time_axis: int) -> None:
    """One label per sample: a sequence whose labels count its first axis (and not its second,
    the samples of a time-major [T, N, ...]) was stored batch-first, or the other way round."""
    if labels != shape[1] and labels == shape[0]:
        given, other = ("[T, N, ...]", "1 ([N, T, ...], batch-first)") if time_axis == 0 else \
            ("[N, T, ...]", "0 ([T, N, ...], time-major)")
        raise SnnCompileError(f"{path}: x of shape {tuple(shape) if time_axis == 0 else (shape[1], shape[0], *shape[2:])}"
                              f" read as {given} has {labels} labels, one per entry of the other axis: the time "
                              "and sample axes are swapped", f"pass --time-axis {other}", EXIT_USAGE)
