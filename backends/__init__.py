"""Target emitters: each backend takes a netlist and runs it or writes an artifact."""

from snncompile.netlist.target import register


def _lava():
    from backends.lava.target import LavaTarget

    return LavaTarget()


register("lava", _lava)
