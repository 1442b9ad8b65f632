"""Event-camera input: event streams (.npy/.npz structured arrays, AEDAT4) binned into frames as
tonic's ToFrame does, a DVS ticket simulated spike for spike from events, and the boundary checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus.events_data import SENSOR, dvs_ticket, recordings, write_aedat4
from equivalence import assert_same_spikes, run_all

import snncompile
from snncompile.errors import EXIT_USAGE, SnnCompileError
from snncompile.events import Binning
from snncompile.inputs import load_inputs

T = 4
N = 3


def tonic_frames(ev: np.ndarray, sensor_whp: tuple[int, int, int], **kw) -> np.ndarray:
    """tonic.functional.to_frame_numpy where tonic is installed; else its documented semantics,
    written independently (event by event, float64): windows [start, start + w) from the first
    event, n_time_bins of width (t_last - t_first) // T, time windows that fit completely
    before the last event, slices of event_count events (fewer events: one slice of all)."""
    try:
        from tonic.functional import to_frame_numpy
    except ImportError:
        pass
    else:
        return to_frame_numpy(ev.copy(), sensor_whp, **kw).astype(np.float64)
    W, H, P = sensor_whp
    t = ev["t"].astype(np.float64)
    if "event_count" in kw:
        c = min(kw["event_count"], len(ev))
        n = (len(ev) - c) // kw["event_count"] + 1
        member = [[kw["event_count"] * i <= k < kw["event_count"] * i + c for k in range(len(ev))] for i in range(n)]
    else:
        if "n_time_bins" in kw:
            n, w = kw["n_time_bins"], (t[-1] - t[0]) // kw["n_time_bins"]
        else:
            w = kw["time_window"]
            n = max(int((t[-1] - t[0] - w) // w) + 1, 1)
        member = [[t[0] + i * w <= tk < t[0] + (i + 1) * w for tk in t] for i in range(n)]
    frames = np.zeros((len(member), P, H, W))
    for i, row in enumerate(member):
        for k in np.flatnonzero(row):
            frames[i, ev["p"][k] if P == 2 else 0, ev["y"][k], ev["x"][k]] += 1
    return frames


@pytest.fixture(scope="module")
def recs() -> list[np.ndarray]:
    return recordings(N, seed=3)


@pytest.fixture(scope="module")
def ticket() -> torch.nn.Module:
    return dvs_ticket(T)


@pytest.fixture(scope="module")
def files(tmp_path_factory, recs, ticket) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("events")
    np.savez(d / "dvs.npz", **{f"events_{i}": r for i, r in enumerate(recs)}, y=np.array([3, 1, 4]),
             sensor_size=np.array([32, 32, 2]))
    np.save(d / "one.npy", recs[0])
    torch.save(ticket, d / "dvs_ticket.pt")
    return {"npz": d / "dvs.npz", "npy": d / "one.npy", "aedat4": write_aedat4(d / "one.aedat4", recs[0], 32, 32),
            "model": d / "dvs_ticket.pt", "dir": d}


@pytest.mark.parametrize("kw", [{"n_time_bins": 4}, {"n_time_bins": 7}, {"time_window": 5000.0},
                                {"time_window": 3999.0}, {"event_count": 500}, {"event_count": 100_000}])
def test_frames_equal_tonic_to_frame(recs, kw):
    binning = Binning(frames=kw.get("n_time_bins"), window=kw.get("time_window"), count=kw.get("event_count"))
    ev = recs[1][:400]
    got = load_inputs_array(ev, binning)
    want = tonic_frames(ev, (32, 32, 2), **kw)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert got.sum() > 0


def load_inputs_array(ev: np.ndarray, binning: Binning) -> np.ndarray:
    from snncompile.inputs import event_inputs

    return event_inputs([ev], None, SENSOR, binning).x[:, 0]


def test_single_polarity_model_sums_polarities_and_last_time_bin_drops_the_last_event(recs):
    from snncompile.inputs import event_inputs

    ev = recs[0][recs[0]["p"] == 1][:50]
    frames = event_inputs([ev], None, (1, 32, 32), Binning(frames=2)).x[:, 0]
    assert frames.shape == (2, 1, 32, 32)
    assert np.array_equal(frames, tonic_frames(ev, (32, 32, 1), n_time_bins=2))
    # tonic's n_time_bins: windows end at t_first + T·((t_last - t_first) // T), the last event excluded
    assert frames.sum() == np.sum(ev["t"] < ev["t"][0] + 2 * ((ev["t"][-1] - ev["t"][0]) // 2))


def test_dvs_ticket_from_events_matches_pytorch_spike_for_spike(files, ticket):
    data = load_inputs(files["npz"], SENSOR, binning=Binning(frames=T))
    assert data.x.shape == (T, N, *SENSOR) and data.sequence and data.y.tolist() == [3, 1, 4]
    runs = run_all(ticket, data.x, SENSOR)
    assert all(s.any() for s in runs.torch_spikes.values()), "a layer never fires: the check would be vacuous"
    assert_same_spikes(runs.torch_spikes, runs.ref_spikes, "reference vs PyTorch from events:")
    np.testing.assert_allclose(runs.ref_output, runs.torch_output, rtol=1e-12, atol=1e-12)


def test_aedat4_npy_and_array_inputs_bin_alike(files, recs):
    b = Binning(window=4000.0)
    aedat = load_inputs(files["aedat4"], SENSOR, binning=b)
    npy = load_inputs(files["npy"], SENSOR, binning=b)
    arr = snncompile.inputs.event_inputs([recs[0]], None, SENSOR, b)
    assert aedat.x.shape[0] == 9 and np.array_equal(aedat.x, npy.x) and np.array_equal(aedat.x, arr.x)


def test_api_energy_run_from_event_arrays_and_padding_of_shorter_recordings(ticket, recs):
    short = recs[0][:700]   # one frame, padded with empty frames to the other's count
    report = snncompile.compile(ticket, target="energy", input=([short, recs[1]], np.array([0, 1])),
                                event_count=700, input_shape=SENSOR, samples=1)   # arrays declare no sensor
    assert report.steps == len(recs[1]) // 700 >= 2
    frames = snncompile.inputs.event_inputs([short, recs[1]], None, SENSOR, Binning(count=700)).x
    assert frames[0, 0].sum() == 700 and not frames[1:, 0].any() and frames[1:, 1].sum() > 0
    with pytest.raises(SnnCompileError, match="--time-axis 1 reads frame arrays"):
        snncompile.compile(ticket, target="energy", input=[short], event_count=700, input_shape=SENSOR,
                           time_axis=1)
    from spikingjelly.activation_based import functional, layer, neuron

    tiny = torch.nn.Sequential(layer.Conv2d(2, 4, 3), neuron.IFNode())   # inspect reads the shape from events
    functional.set_step_mode(tiny, "m")
    ev = recs[0][:3].copy()
    ev["x"], ev["y"] = [0, 20, 5], [11, 2, 0]   # the sensor tonic infers: 2 × (max y + 1) × (max x + 1)
    assert snncompile.inspect(tiny, input=[ev]).layers[-1].shape == (4, 10, 19)
    with pytest.raises(SnnCompileError, match="event_frames/event_window/event_count bin event streams"):
        snncompile.compile(ticket, target="energy", input=np.zeros((1, *SENSOR)), event_frames=4)


def _bad(ev_list, shape=SENSOR, binning: Binning | None = None, y=None) -> str:
    from snncompile.inputs import event_inputs

    with pytest.raises(SnnCompileError) as e:
        event_inputs(ev_list, y, shape, binning or Binning(frames=T))
    assert e.value.exit_code == EXIT_USAGE and e.value.hint
    return str(e.value)


def test_boundary_refusals(recs, monkeypatch):
    ev = recs[0]
    assert "has no events" in _bad([ev[:0]])
    assert "not sorted (t[" in _bad([ev[::-1]])
    assert "events need fields t, x, y, p" in _bad([np.zeros(4, [("t", "<i8"), ("x", "<i2"), ("y", "<i2")])])
    wide = ev.copy()
    wide["x"][5] = 40
    assert "… 40, outside the model's width 32" in _bad([wide])
    pol = ev.astype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
    pol["p"][pol["p"] == 0] = -1
    assert "not 0/1" in _bad([pol])
    assert "not event frames [P, H, W]" in _bad([ev], shape=(3, 32, 32))
    assert "both polarities" in _bad([ev], shape=(1, 32, 32))
    assert "is not given" in _bad([ev], binning=Binning())
    assert "both choose" in _bad([ev], binning=Binning(frames=2, count=10))
    assert "every frame would be empty" in _bad([ev[:3]], binning=Binning(frames=10_000))
    assert "labels" in _bad([ev, ev], y=np.array([1]))
    floats = ev.astype([("x", "<f4"), ("y", "<i2"), ("p", "u1"), ("t", "<i8")])
    assert "field x has dtype float32" in _bad([floats])
    monkeypatch.setenv("SNNCOMPILE_MEMORY_BUDGET", "100000000")
    assert "needs" in _bad([ev], binning=Binning(window=1.0))   # 1 µs frames over 40 ms: ~40 000 frames
    flags = ev.astype([("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("t", "?")])
    assert "field t has dtype bool, not numbers" in _bad([flags])   # was a raw TypeError (bool subtraction)
    unsigned = ev.astype([("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("t", "<u8")])
    unsigned["t"][10] = 0
    assert "not sorted (t[9]" in _bad([unsigned])   # np.diff of unsigned timestamps wrapped: not seen
    below = ev.copy()
    below["y"][5] = -1
    assert "y spans -1 … " in _bad([below]) and "negative pixel coordinates" in _bad([below])
    assert "more than 100,000 time steps" in _bad([ev], binning=Binning(window=1e-300))   # not a 300-digit count
    wide_t = ev.copy()
    wide_t["t"][0], wide_t["t"][-1] = -(1 << 62), 1 << 62   # the span overflows int64
    assert "(over 140,000 years): not microseconds" in _bad([wide_t], binning=Binning(window=10.0))
    assert "(over 140,000 years): not microseconds" in _bad([wide_t], binning=Binning(frames=4))


@pytest.mark.parametrize("binning", [Binning(window=5000.0), Binning(window=3999), Binning(frames=4),
                                     Binning(count=100)], ids=str)
def test_timestamps_from_any_epoch_bin_alike(recs, binning):
    """A clock counted from an arbitrary epoch: stamps near the top of int64, above 2^63 in
    uint64 (float64 cannot hold them), or spanning more than int32 holds, in that type. Window
    bounds added to t[0] in those types wrapped around or rounded: different frames, silently."""
    ev = recs[1][:400]
    want = load_inputs_array(ev, binning)
    top = ev.copy()
    top["t"] += np.iinfo(np.int64).max - int(ev["t"][-1]) - 10
    above = ev.astype([("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("t", "<u8")])
    above["t"] += np.uint64(1 << 63)
    narrow = ev.astype([("x", "<i2"), ("y", "<i2"), ("p", "u1"), ("t", "<i4")])
    narrow["t"] = (ev["t"] - ev["t"][0]) * 100_000 - (1 << 31)          # 1 µs = 100 000 ticks of int32
    for shifted in (top, above):
        assert np.array_equal(load_inputs_array(shifted, binning), want)
    if binning.window is None:
        scaled = tonic_frames(narrow, (32, 32, 2), **{"n_time_bins": binning.frames} if binning.frames
                              else {"event_count": binning.count})
        assert np.array_equal(load_inputs_array(narrow, binning), scaled)


def test_aedat4_refusals(files, tmp_path, recs, monkeypatch):
    with pytest.raises(SnnCompileError, match="the sensor is 64×48 with 2 polarities .* the model takes 32×32×2"):
        load_inputs(write_aedat4(tmp_path / "big.aedat4", recs[0], 64, 48), SENSOR, binning=Binning(frames=T))
    junk = tmp_path / "junk.aedat4"
    junk.write_bytes(b"#!AER-DAT4.0\r\n\xff\xff")
    with pytest.raises(SnnCompileError, match="cannot read AEDAT4 file"):
        load_inputs(junk, SENSOR, binning=Binning(frames=T))
    frames = tmp_path / "frames.npy"
    np.save(frames, np.zeros((2, *SENSOR)))
    with pytest.raises(SnnCompileError, match="holds frames, not events"):
        load_inputs(frames, SENSOR, binning=Binning(frames=T))
    monkeypatch.setitem(sys.modules, "aedat", None)   # not installed
    with pytest.raises(SnnCompileError, match=r'aedat is not installed.*\n  hint: run: pip install "snncompile\[events\]"'):
        load_inputs(files["aedat4"], SENSOR, binning=Binning(frames=T))


def test_cli_energy_from_events_and_a_one_line_refusal(files, capsys):
    from snncompile.cli import main

    code = main(["energy", str(files["model"]), "--input", str(files["npz"]), "--event-frames", str(T),
                 "--samples", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["steps"] == T and doc["energy"]
    code = main(["energy", str(files["model"]), "--input", str(files["npz"]), "--event-window", "0"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err
    assert "--event-window = 0.0 is not a finite number > 0" in err


@pytest.mark.lava
def test_lava_runs_the_dvs_ticket_spike_for_spike_from_an_aedat4_file(files, ticket):
    report = snncompile.compile(ticket, target="lava", input=files["aedat4"], event_frames=T,
                                simulate_on_target=True)
    sim = report.simulation
    assert sim["samples"] == 1 and report.steps == T
    assert sim["spike_agreement"] == 1.0 and sim["prediction_agreement"] == 1.0
    assert sim["reference"]["reference_simulator_spike_agreement"] == 1.0
