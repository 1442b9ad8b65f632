"""Shipped cost models carry their cited figures; user TOML files are validated."""

import pytest

from snncompile.energy import available, load_cost_model
from snncompile.energy.costs import OPS
from snncompile.errors import SnnCompileError

# Figures as published (Horowitz ISSCC 2014; Lemaire et al. 2022; Davies et al. 2018).
HOROWITZ = {"fp32_mult": 3.7, "fp32_add": 0.9, "int32_mult": 3.1, "int32_add": 0.1,
            "int8_mult": 0.2, "int8_add": 0.03}


def test_shipped_models():
    assert {"45nm", "45nm-int8", "lemaire", "loihi"} <= set(available())
    for name in available():
        m = load_cost_model(name)
        assert m.name == name and m.units == "pJ" and m.source
        assert m.pj("bop") == pytest.approx(m.pj("mac") / 64)
        assert "bop" in m.describe()["unverified"]      # derived from BOPs/64: no primary source
        assert m.derived == {}                          # shipped files spell every figure out
        assert set(m.ops) <= set(OPS)


def test_figures_match_their_sources():
    m = load_cost_model("45nm")
    assert m.pj("mac") == pytest.approx(HOROWITZ["fp32_mult"] + HOROWITZ["fp32_add"]) == 4.6
    assert (m.pj("ac"), m.pj("add"), m.pj("mult")) == (0.9, 0.9, 3.7)
    assert m.pj("ac_binary") == HOROWITZ["int32_add"]
    i8 = load_cost_model("45nm-int8")
    assert (i8.pj("add"), i8.pj("mult")) == (HOROWITZ["int8_add"], HOROWITZ["int8_mult"])
    assert i8.pj("mac") == pytest.approx(0.23)
    le = load_cost_model("lemaire")
    assert (le.pj("ac"), le.pj("mult")) == (HOROWITZ["int32_add"], HOROWITZ["int32_mult"])
    assert le.ram_pj(0) == 13.2
    assert le.ram_pj(8 * 1024 * 8) == pytest.approx(1.09e-5 * 65536 + 13.2)   # an 8 KiB SRAM
    assert load_cost_model("45nm").ram_pj(1e6) == 0.0                         # no memory model
    lo = load_cost_model("loihi")
    assert (lo.pj("ac"), lo.pj("neuron_update_active"), lo.pj("neuron_update_inactive"),
            lo.pj("spike")) == (23.6, 81.0, 52.0, 1.7)
    assert lo.per_neuron_update and not m.per_neuron_update


def _write(tmp_path, text: str):
    p = tmp_path / "model.toml"
    p.write_text(text)
    return p


GOOD = 'name = "x"\nsource = "somewhere"\nunits = "pJ"\n[ops]\nmac = 2.0\nac = 0.5\n'


def test_minimal_user_model_derives_the_rest_and_marks_it(tmp_path):
    m = load_cost_model(str(_write(tmp_path, GOOD)))
    assert m.pj("bop") == 2.0 / 64 and m.pj("ac_binary") == 0.5
    assert m.pj("mult") == 1.5 and m.pj("cmp") == 0.5 and m.pj("reset") == 0.5
    assert set(m.derived) == {"bop", "ac_binary", "add", "mult", "cmp", "reset"}
    assert set(m.describe()["unverified"]) == set(m.derived)


@pytest.mark.parametrize("text,needle", [
    ('name = "x"\nunits = "pJ"\n[ops]\nmac = 1.0\nac = 0.1\n', "lacks source"),
    (GOOD.replace('"pJ"', '"nJ"'), "units 'nJ'"),
    (GOOD.replace("ac = 0.5", "ac = -0.5"), "ops.ac = -0.5"),
    (GOOD.replace("ac = 0.5", 'ac = "cheap"'), "ops.ac = 'cheap'"),
    (GOOD.replace("ac = 0.5", "ac = true"), "ops.ac = True"),
    (GOOD.replace("ac = 0.5", "ak = 0.5"), "unknown operation(s) ak"),
    (GOOD.replace("ac = 0.5\n", ""), "[ops] lacks ac"),
    (GOOD.replace('units = "pJ"', 'units = "pJ"\nunverified = ["mak"]'), "unknown figure(s) mak"),
    (GOOD.replace('units = "pJ"', 'units = "pJ"\nunverified = ["spike"]'), "which [ops] does not define"),
    (GOOD + "neuron_update_active = 1.0\n", "neuron_update_inactive"),
    (GOOD + "[memory]\nram_pj_per_bit = 1e-5\nram_pj_offset = 13.2\n", "[memory] lacks word_bits"),
    (GOOD + "[memory]\nram_pj_per_bit = 1e-5\nram_pj_offset = 13.2\nword_bits = 0\n", "word_bits = 0"),
    (GOOD + "[memory]\nram_pj_per_bit = 1e-5\nram_pj_offset = 1\nword_bits = 8\nsize = 3\n", "unknown key"),
    ('colour = "red"\n' + GOOD, "unknown key(s) colour"),
    (GOOD + 'colour = "red"\n', "unknown operation(s) colour"),
    ('name = "x"\nsource = [', "cannot parse"),
])
def test_bad_user_models_are_refused_clearly(tmp_path, text, needle):
    with pytest.raises(SnnCompileError) as err:
        load_cost_model(str(_write(tmp_path, text)))
    assert needle in err.value.message and err.value.hint and err.value.exit_code == 2


def test_unknown_name_or_path(tmp_path):
    with pytest.raises(SnnCompileError, match="unknown energy model 'nope'") as err:
        load_cost_model("nope")
    assert "45nm" in err.value.hint
    with pytest.raises(SnnCompileError, match="does not exist"):
        load_cost_model(str(tmp_path / "missing.toml"))
    with pytest.raises(SnnCompileError, match="is a directory"):
        load_cost_model(str(tmp_path))


def test_a_breakdown_adds_every_category():
    """Breakdown.add spells out its categories (a sweep adds ~150 per ticket): every one of
    CATEGORIES, and only those, is a field that add() sums."""
    from dataclasses import fields

    from snncompile.energy.report import CATEGORIES, Breakdown

    assert tuple(f.name for f in fields(Breakdown)) == CATEGORIES
    a = Breakdown(*(float(i + 1) for i in range(len(CATEGORIES))))
    b = Breakdown(*(10.0 ** (i + 1) for i in range(len(CATEGORIES))))
    a.add(b)
    assert a.to_dict() == {k: (i + 1) + 10.0 ** (i + 1) for i, k in enumerate(CATEGORIES)}
