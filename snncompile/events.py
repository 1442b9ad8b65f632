"""Event-camera input: event streams binned into frames the way tonic's ``ToFrame`` does.

A recording is a structured array with fields ``t, x, y, p`` (tonic's layout; ``t`` in µs,
sorted), read from a ``.npy`` (one recording), an ``.npz`` (``events`` for one recording, or
``events_0 … events_{N-1}`` and optional labels ``y``) or an AEDAT4 file (decoded by the
``aedat`` package; one recording). Frames are ``[T, P, H, W]`` event counts per polarity and
pixel (``P`` = the model's input channels, 2 for ON/OFF, 1 for both together), binned by one of:

* ``frames`` — tonic's ``n_time_bins``: T windows of ``(t_last - t_first) // T`` µs from the
  first event;
* ``window`` — tonic's ``time_window``: windows of that many µs from the first event, as many
  as fit completely before the last event;
* ``count`` — tonic's ``event_count``: consecutive slices of that many events (a recording with
  fewer gives one slice of all of them).

Windows are half-open ``[start, start + window)`` (``np.searchsorted``, side left), no
overlap, incomplete slices dropped — tonic's defaults. Recordings that bin to different frame
counts are padded with empty frames at the end to the longest, as ``tonic.collation.PadTensors``
does for a batch. See docs/events.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.limits import check_memory
from snncompile.schema import MAX_STEPS

FIELDS = ("t", "x", "y", "p")
AEDAT_SUFFIXES = (".aedat4",)
_FIX = "store events as a structured array with fields t, x, y, p (tonic's layout), e.g. np.save(path, events)"


@dataclass(frozen=True)
class Binning:
    """How event streams become frames: exactly one of ``frames``, ``window``, ``count``."""

    frames: int | None = None     # tonic n_time_bins
    window: float | None = None   # tonic time_window (µs, the unit of t)
    count: int | None = None      # tonic event_count
    shape_only: bool = False      # only the frames' shape is wanted (inspect): one frame of all events

    @property
    def given(self) -> bool:
        """A binning the user chose (``shape_only`` is none: frame input is fine with it)."""
        return any(v is not None for v in (self.frames, self.window, self.count))

    def check(self) -> None:
        chosen = [f for f, v in (("--event-frames", self.frames), ("--event-window", self.window),
                                 ("--event-count", self.count)) if v is not None]
        if len(chosen) > 1:
            raise SnnCompileError(f"{' and '.join(chosen)} both choose how events become frames",
                                  "pass one of --event-frames T, --event-window US, --event-count N", EXIT_USAGE)


def is_events(array: Any) -> bool:
    """A structured array with tonic's event fields."""
    names = getattr(getattr(array, "dtype", None), "names", None) or ()
    return bool(names) and set(FIELDS) <= set(names)


def is_event_file(path: Path) -> bool:
    return path.suffix.lower() in AEDAT_SUFFIXES


Npz = tuple[list[np.ndarray], "np.ndarray | None", "tuple[int, int, int] | None"]


def recordings_from_npz(path: Path, files: list[str], data: Any) -> Npz | None:
    """The recordings of an .npz holding events (``events`` or ``events_0, events_1, …``), its
    labels ``y`` and ``sensor_size`` (W, H, P) if stored; None when it holds no events (then
    ``x`` is read as frames)."""
    if "events" in files:
        recs = [data["events"]]
    else:
        numbered = sorted((int(k[7:]), k) for k in files if k.startswith("events_") and k[7:].isdigit())
        if not numbered:
            return None
        if [i for i, _ in numbered] != list(range(len(numbered))):
            raise SnnCompileError(f"{path}: recordings are numbered {[i for i, _ in numbered]}, not 0 … "
                                  f"{len(numbered) - 1}", "name them events_0, events_1, … without gaps", EXIT_USAGE)
        recs = [data[k] for _, k in numbered]
    return recs, data["y"] if "y" in files else None, _sensor_size(path, data) if "sensor_size" in files else None


def _sensor_size(path: Path, data: Any) -> tuple[int, int, int]:
    size = np.asarray(data["sensor_size"])
    if size.shape != (3,) or size.dtype.kind not in "iu" or (size < 1).any():
        raise SnnCompileError(f"{path}: sensor_size is {size.tolist()}, not (W, H, P) positive integers",
                              "store sensor_size=np.array([W, H, P]) (tonic's order), e.g. [128, 128, 2]", EXIT_USAGE)
    return int(size[0]), int(size[1]), int(size[2])


def read_aedat4(path: Path) -> tuple[list[np.ndarray], tuple[int, int, int]]:
    """One recording from an AEDAT4 file (all its event streams), and the sensor's (W, H, 2)."""
    try:
        import aedat
    except ModuleNotFoundError:   # the message of snncompile.deps, which sits above this stage
        raise SnnCompileError("aedat is not installed; snncompile needs it for AEDAT4 event files",
                              'run: pip install "snncompile[events]"', EXIT_USAGE) from None
    try:
        decoder = aedat.Decoder(path)
        streams = [s for s in decoder.id_to_stream().values() if s.get("type") == "events"]
        chunks, total = [], 0
        for packet in decoder:
            if "events" in packet:
                chunks.append(packet["events"])
                total += len(packet["events"])
                check_memory(f"events of {path}", total * 32, "split the recording into shorter files")
    except (OSError, RuntimeError, ValueError) as exc:
        raise SnnCompileError(f"cannot read AEDAT4 file {path}: {exc}",
                              "pass an AEDAT4 file written by DV (or events as a .npy structured array)",
                              EXIT_USAGE) from None
    if not streams:
        raise SnnCompileError(f"AEDAT4 file {path} has no event stream",
                              "record polarity events (DV's 'events' output)", EXIT_USAGE)
    raw = np.concatenate(chunks) if chunks else np.zeros(0, [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "?")])
    events = np.zeros(len(raw), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for f in ("t", "x", "y"):
        events[f] = raw[f]
    events["p"] = raw["on"]
    return [events], (int(streams[0]["width"]), int(streams[0]["height"]), 2)


def _sensor(where: str, input_shape: tuple[int, ...] | None, recs: list[np.ndarray],
            declared: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """(P, H, W) of the frames: the model's input shape; when that is unknown, the sensor the
    file declares, else (2, max y + 1, max x + 1) as tonic infers it."""
    if input_shape is None:
        if declared is not None:
            return declared[2], declared[1], declared[0]
        return (2, max(int(r["y"].max()) for r in recs) + 1, max(int(r["x"].max()) for r in recs) + 1)
    if len(input_shape) != 3 or input_shape[0] not in (1, 2):
        raise SnnCompileError(f"{where} holds events, but the model takes inputs of shape {tuple(input_shape)}, "
                              "not event frames [P, H, W] with P = 1 or 2 polarity channels",
                              "feed events to a model whose input is [2, H, W] (or [1, H, W]), or pass frames",
                              EXIT_USAGE)
    if declared is not None and (declared[2], declared[1], declared[0]) != tuple(input_shape):
        raise SnnCompileError(f"{where}: the sensor is {declared[0]}×{declared[1]} with {declared[2]} polarities "
                              f"(W×H×P) but the model takes {input_shape[2]}×{input_shape[1]}×{input_shape[0]} frames",
                              "downsample or crop the events to the model's size (e.g. tonic.transforms."
                              "Downsample) and save them as .npy", EXIT_USAGE)
    return tuple(int(v) for v in input_shape)  # type: ignore[return-value]


def check_recording(where: str, ev: Any, sensor: tuple[int, int, int]) -> np.ndarray:
    """One recording's fields, dtypes, values and order, checked against the sensor (P, H, W)."""
    ev = np.asarray(ev)
    if ev.dtype == object or not is_events(ev) or ev.ndim != 1:
        names = getattr(ev.dtype, "names", None)
        got = f"fields {', '.join(names)}" if names else f"dtype {ev.dtype}, shape {ev.shape}"
        raise SnnCompileError(f"{where} is not an event stream: it has {got}; events need fields "
                              f"{', '.join(FIELDS)}", _FIX, EXIT_USAGE)
    for f in FIELDS:
        kind = ev.dtype[f].kind
        if kind not in ("iuf" if f == "t" else "iub"):   # timestamps are numbers to subtract: not booleans
            raise SnnCompileError(f"{where}: field {f} has dtype {ev.dtype[f]}, not {'numbers' if f == 't' else 'integers'}",
                                  _FIX, EXIT_USAGE)
    if len(ev) == 0:
        raise SnnCompileError(f"{where} has no events", "drop empty recordings (or record longer)", EXIT_USAGE)
    t = ev["t"]
    if t.dtype.kind == "f" and not np.isfinite(t).all():
        raise SnnCompileError(f"{where}: timestamps t contain NaN or inf", _FIX, EXIT_USAGE)
    down = np.flatnonzero(t[1:] < t[:-1])   # not np.diff: unsigned differences wrap around
    if down.size:
        i = int(down[0])
        raise SnnCompileError(f"{where}: timestamps are not sorted (t[{i}] = {t[i]} > t[{i + 1}] = {t[i + 1]})",
                              "sort the events by time: ev = ev[np.argsort(ev['t'], kind='stable')]", EXIT_USAGE)
    P, H, W = sensor
    for f, size, axis in (("x", W, "width"), ("y", H, "height")):
        lo, hi = int(ev[f].min()), int(ev[f].max())
        if lo < 0:
            raise SnnCompileError(f"{where}: {f} spans {lo} … {hi}, negative pixel coordinates",
                                  "store x and y as pixel indices from 0", EXIT_USAGE)
        if hi >= size:
            raise SnnCompileError(f"{where}: {f} spans {lo} … {hi}, outside the model's {axis} {size}",
                                  "crop or downsample the events to the model's input size", EXIT_USAGE)
    pols = np.unique(ev["p"].astype(np.int64))
    if not set(pols.tolist()) <= {0, 1}:
        raise SnnCompileError(f"{where}: polarity p takes values {pols[:4].tolist()}, not 0/1",
                              "store p as 0 (OFF) and 1 (ON): ev['p'] = ev['p'] > 0", EXIT_USAGE)
    if P == 1 and pols.size > 1:  # tonic refuses both polarities on a single-polarity sensor
        raise SnnCompileError(f"{where} has both polarities but the model takes one input channel",
                              "use a model with 2 input channels, or keep one polarity", EXIT_USAGE)
    return ev


def _span(t: np.ndarray) -> int | float:
    """``t[-1] - t[0]`` without the wrap-around of fixed-width integers."""
    return int(t[-1]) - int(t[0]) if t.dtype.kind in "iu" else float(t[-1]) - float(t[0])


def slices(t: np.ndarray, binning: Binning) -> np.ndarray:
    """[start, end) event indices of each frame, as tonic's slicers compute them."""
    if binning.count is not None:
        n = len(t)
        count = min(binning.count, n)
        starts = np.arange(int(np.floor((n - count) / binning.count) + 1)) * binning.count
        return np.stack([starts, starts + count], -1)
    rel = _since_first(t)   # window bounds from t[0] computed in t's own type would wrap or round
    if binning.window is not None:
        duration = _span(t)
        n = max(int(np.floor((duration - binning.window) / binning.window) + 1), 1)
        starts_t = np.arange(n) * binning.window
    else:
        window = _span(t) // binning.frames
        starts_t = np.arange(binning.frames) * window
        n, binning = binning.frames, Binning(window=window)
    return np.stack([np.searchsorted(rel, starts_t), np.searchsorted(rel, starts_t + binning.window)], -1)[:n]


def _since_first(t: np.ndarray) -> np.ndarray:
    """``t − t[0]`` of sorted timestamps, exactly: int64 for integers (stamps near the top of
    int64 or uint64 — a clock counted from an arbitrary epoch — would wrap when a window is
    added, or round to float64 when mixed with int64 window starts), float64 for floats."""
    if t.dtype.kind == "f":
        return t.astype(np.float64) - float(t[0])
    if t.dtype.kind == "u" and t.dtype.itemsize == 8:   # no int64 holds every uint64; the differences fit
        return (t - t[0]).astype(np.int64)
    return t.astype(np.int64) - np.int64(t[0])


_MAX_SPAN = 1 << 62   # window starts + one window still fit in int64 (frame_count refuses more)


def frame_count(where: str, t: np.ndarray, binning: Binning) -> int:
    """How many frames ``binning`` makes of timestamps ``t`` (checked before anything is allocated)."""
    if _span(t) > _MAX_SPAN:
        raise SnnCompileError(f"{where}: timestamps span {_span(t):,} µs (over 140,000 years): not microseconds",
                              "store t in microseconds (from any start)", EXIT_USAGE)
    if binning.frames is not None:
        if _span(t) < binning.frames:
            raise SnnCompileError(f"{where} spans {_span(t)} µs, less than one µs per frame for "
                                  f"--event-frames {binning.frames}: every frame would be empty",
                                  "pass fewer --event-frames, or --event-count N", EXIT_USAGE)
        return binning.frames
    if binning.count is not None:
        return int(np.floor((len(t) - min(binning.count, len(t))) / binning.count) + 1)
    n = max(np.floor((_span(t) - binning.window) / binning.window) + 1, 1.0)
    if n > MAX_STEPS:
        raise SnnCompileError(f"{where}: --event-window {binning.window:g} µs over its {_span(t):g} µs makes {n:.3g} "
                              f"frames, more than {MAX_STEPS:,} time steps", "pass a larger --event-window (or "
                              "--event-frames T)", EXIT_USAGE)
    return int(n)


def to_frames(ev: np.ndarray, sensor: tuple[int, int, int], binning: Binning, steps: int) -> np.ndarray:
    """One checked recording as ``steps`` frames [steps, P, H, W] of event counts (float64)."""
    P, H, W = sensor
    frames = np.zeros((steps, P, H, W))
    p = np.zeros(len(ev), np.int64) if P == 1 else ev["p"].astype(np.int64)
    for i, (a, b) in enumerate(slices(ev["t"], binning)):
        np.add.at(frames, (i, p[a:b], ev["y"][a:b].astype(np.int64), ev["x"][a:b].astype(np.int64)), 1)
    return frames


def bin_recordings(where: str, recs: list[Any], binning: Binning, input_shape: tuple[int, ...] | None,
                   declared: tuple[int, int, int] | None = None) -> np.ndarray:
    """Recordings checked and binned into time-major frames [T, N, P, H, W]."""
    if binning.shape_only:
        binning = Binning(count=max([len(r) for r in recs] + [1]))
    if not binning.given:
        raise SnnCompileError(f"{where} holds events; how they become frames is not given",
                              "pass --event-frames T (T frames per recording), --event-window US or --event-count N "
                              "(API: event_frames=, event_window=, event_count=)", EXIT_USAGE)
    binning.check()
    if not recs:
        raise SnnCompileError(f"{where} holds no recordings", "store at least one", EXIT_USAGE)
    names = [where if len(recs) == 1 else f"{where} recording {i}" for i in range(len(recs))]
    for name, r in zip(names, recs):   # fields first: the sensor may be read from them
        check_recording(name, r, (2, 1 << 30, 1 << 30))
    sensor = _sensor(where, input_shape, recs, declared)
    recs = [check_recording(name, r, sensor) for name, r in zip(names, recs)]
    steps = max(frame_count(name, r["t"], binning) for name, r in zip(names, recs))
    check_memory(f"{steps} event frames × {len(recs)} recordings of shape {sensor}",
                 steps * len(recs) * int(np.prod(sensor)) * 8 * 2, "pass fewer --event-frames or a larger window")
    return np.stack([to_frames(r, sensor, binning, steps) for r in recs], axis=1)
