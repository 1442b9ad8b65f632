"""Event-camera test data made here (nothing downloaded): a DVS-style pruned CNN ticket, event
streams of moving digits as a DVS sensor would report them, and an AEDAT4 writer."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from corpus.tickets import images, prune_
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

SENSOR = (2, 32, 32)   # (P, H, W): ON/OFF polarity channels of a 32 × 32 sensor
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("t", "<i8")])   # tonic's layout


def dvs_ticket(steps: int, seed: int = 0) -> nn.Module:
    """A multi-step spikingjelly CNN on [T, N, 2, 32, 32] event frames (128 channels), 90 % pruned,
    BatchNorm calibrated on event frames so that every layer fires. A plain Sequential, so the
    CLI loads it without --trust-pickle."""
    torch.manual_seed(seed)

    def sn() -> nn.Module:
        return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), detach_reset=True)

    model = nn.Sequential(
        layer.Conv2d(2, 128, 3, padding=1, bias=False), layer.BatchNorm2d(128), sn(), layer.MaxPool2d(2),
        layer.Conv2d(128, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), sn(), layer.MaxPool2d(2),
        layer.Flatten(), layer.Linear(32 * 8 * 8, 10), sn())
    functional.set_step_mode(model, "m")
    prune_(model)
    frames = np.stack([_coarse_frames(r, steps) for r in recordings(8, seed=seed + 1)], axis=1)
    x = torch.as_tensor(frames, dtype=torch.float32)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    with torch.no_grad():
        functional.reset_net(model)
        model(x)
        functional.reset_net(model)
        for bn in bns:
            bn.weight.mul_(1.5)
            bn.bias.add_(0.2)
        model.eval()
        functional.reset_net(model)
        fc = model[9]
        pre = fc(model[:9](x))            # the classifier's input current: scaled so that it fires
        fc.weight.mul_(2.0 / float(pre.std()))
        functional.reset_net(model)
    return model.double()


def _coarse_frames(ev: np.ndarray, steps: int) -> np.ndarray:
    """Calibration frames only (equal index slices): the tests bin with snncompile."""
    out = np.zeros((steps, *SENSOR))
    for i, part in enumerate(np.array_split(ev, steps)):
        np.add.at(out, (i, part["p"].astype(int), part["y"].astype(int), part["x"].astype(int)), 1)
    return out


def recordings(n: int, seed: int = 0, duration_us: int = 40_000) -> list[np.ndarray]:
    """``n`` recordings of a digit sliding across the sensor: an event wherever a pixel's intensity
    rises (p = 1) or falls (p = 0) between two positions, at a random time within that step,
    sorted by time (with ties, as sensors report them)."""
    rng = np.random.default_rng(seed)
    pics = images(n, (1, 16, 16), seed=seed)[:, 0]
    out = []
    for pic in pics:
        moves, prev, chunks = 20, None, []
        dx, dy = rng.choice([-1, 1], 2)
        for k in range(moves):
            frame = np.zeros(SENSOR[1:])
            oy, ox = 8 + dy * (k // 3) % 8, 8 + dx * k % 8
            frame[oy:oy + 16, ox:ox + 16] = pic
            if prev is not None:
                diff = frame - prev
                ys, xs = np.nonzero(np.abs(diff) > 0.2)
                ev = np.zeros(len(ys), EVENT_DTYPE)
                ev["x"], ev["y"], ev["p"] = xs, ys, diff[ys, xs] > 0
                step = duration_us // moves
                ev["t"] = k * step + rng.integers(0, step // 4, len(ys)) * 4   # coarse clock: ties
                chunks.append(ev)
            prev = frame
        ev = np.concatenate(chunks)
        out.append(ev[np.argsort(ev["t"], kind="stable")])
    return out


# ---------------------------------------------------------------- AEDAT4 (format of DV / iniVation)

def _description(width: int, height: int) -> str:
    """The IOHeader's XML: one event stream (id 0) of a width × height sensor."""
    base = "/mainModule/output/file/outInfo/"
    return (f'<dv version="2.0"><node name="outInfo" path="{base}"><node name="0" path="{base}0/">'
            '<attr key="compression" type="string">NONE</attr>'
            '<attr key="originalOutputName" type="string">events</attr>'
            '<attr key="typeIdentifier" type="string">EVTS</attr>'
            f'<node name="info" path="{base}0/info/"><attr key="sizeX" type="int">{width}</attr>'
            f'<attr key="sizeY" type="int">{height}</attr><attr key="source" type="string">test</attr>'
            '</node></node></node></dv>')


def _ioheader(width: int, height: int) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(256)
    desc = b.CreateString(_description(width, height))
    b.StartObject(3)
    b.PrependInt32Slot(0, 0, 0)           # compression: None
    b.PrependInt64Slot(1, -1, -1)         # file_data_position: none (read to the end)
    b.PrependUOffsetTRelativeSlot(2, desc, 0)
    b.Finish(b.EndObject(), file_identifier=b"IOHE")
    return bytes(b.Output())


def _event_packet(ev: np.ndarray) -> bytes:
    """An ``EventPacket`` table of ``Event {t: int64; x: int16; y: int16; on: bool}`` structs,
    size-prefixed with identifier EVTS."""
    import flatbuffers

    b = flatbuffers.Builder(32 + 16 * len(ev))
    b.StartVector(16, len(ev), 8)
    for e in ev[::-1]:                    # flatbuffers build back to front
        b.Prep(8, 16)
        b.Pad(3)
        b.PrependBool(bool(e["p"]))
        b.PrependInt16(int(e["y"]))
        b.PrependInt16(int(e["x"]))
        b.PrependInt64(int(e["t"]))
    vec = b.EndVector()
    b.StartObject(1)
    b.PrependUOffsetTRelativeSlot(0, vec, 0)
    b.FinishSizePrefixed(b.EndObject(), file_identifier=b"EVTS")
    return bytes(b.Output())


def write_aedat4(path: Path, ev: np.ndarray, width: int, height: int, packet: int = 500) -> Path:
    """An uncompressed AEDAT4 file: magic, IOHeader, then packets of at most ``packet`` events."""
    header = _ioheader(width, height)
    with open(path, "wb") as fh:
        fh.write(b"#!AER-DAT4.0\r\n")
        fh.write(struct.pack("<I", len(header)) + header)
        for start in range(0, len(ev), packet):
            body = _event_packet(ev[start:start + packet])
            fh.write(struct.pack("<iI", 0, len(body)) + body)
    return path
