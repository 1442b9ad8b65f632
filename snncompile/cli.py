"""Command line: `snncompile [compile|simulate|energy|export|inspect] MODEL ...` (compile is the default verb)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence

from snncompile import targets
from snncompile.errors import EXIT_BACKEND, EXIT_MISMATCH, EXIT_PIPE, EXIT_USAGE, SnnCompileError
from snncompile.fsutil import names_folder


def _shape(text: str) -> tuple[int, ...]:
    parts = text.replace("x", ",").split(",")
    try:
        if any(not v.strip() for v in parts):
            raise ValueError
        dims = tuple(int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,8,8") from None
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 1,8,8")
    return dims


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors: one line and exit 2, like every other error
        self.print_usage(sys.stderr)
        raise SnnCompileError(f"{self.prog}: {message}", "see --help", EXIT_USAGE)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="checkpoint: a pickled nn.Module, or a state_dict with --arch; or a .nir graph; "
                   "or a lava-dl netx file (.net/.h5, docs/loihi.md)")
    p.add_argument("--arch", metavar="PKG.MOD:FACTORY", help="builds the model for a state_dict")
    p.add_argument("--trust-pickle", action="store_true",
                   help="unpickle classes outside torch/spikingjelly (runs the file's code)")
    p.add_argument("--input-shape", type=_shape, metavar="C,H,W", help="per-sample input shape")
    p.add_argument("--nir-dt", type=float, metavar="DT", help="time step of a .nir graph's leaky neurons "
                   "(the step the exporting code simulated with; snnTorch's τ/r is used when not given; see docs/nir.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout, nothing else")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="show every IR node and the pass table")
    p.add_argument("--passes", metavar="A,B,...", help="passes to run (default: all, in order): "
                   "fold_batchnorm, fuse_convpep, binarize, mask_patches, prune_synapses, dead_neurons")
    p.add_argument("--no-passes", action="store_true", help="compile the model as stored (dense)")
    p.add_argument("--masks", metavar="FILE.pkl", help="pruning masks: pickled list of arrays, "
                   "one per 'weight' parameter in named_parameters() order")


def _defaults() -> dict[str, object]:
    """The API's option defaults (``api.Options``): one set for both."""
    from snncompile.api import defaults

    return defaults()


def _version() -> str:
    from snncompile import __version__

    return f"snncompile {__version__} (Python {sys.version.split()[0]})"


# What each compile-like verb does, for its --help.
_VERB_HELP = {
    "compile": "Compile a spiking PyTorch/spikingjelly model (or a .nir graph) to a neuromorphic target "
               "and estimate its energy.",
    "simulate": "Compile a model, simulate it on the target and compare it with PyTorch, spike for spike "
                "(as compile --simulate).",
    "energy": "Estimate the energy of a model on neuromorphic hardware and as an ANN (as compile --target "
              "energy).",
    "export": "Write the optimized IR (model.ir.npz) and report.json to -o DIR (as compile --target ir); "
              "with --format netx, a lava-dl netx HDF5 file to -o FILE.net (fixed point; docs/netx.md).",
}


def compile_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The compile options; ``verb`` (simulate, energy, export) names the parser in usage and help."""
    d = _defaults()
    description = _VERB_HELP.get(verb or "compile", "")
    if verb is None:
        description += (" Verbs: compile (default), simulate, energy, export, inspect, sweep, doctor, setup: "
                        "`snncompile VERB --help`.")
    p = _Parser(prog=f"snncompile {verb}" if verb else "snncompile", description=description)
    p.add_argument("--version", action="version", version=_version())
    _common(p)
    p.add_argument("--target", default=d["target"], choices=list(targets.TARGETS), help=targets.target_help())
    p.add_argument("--steps", "-T", type=int, help="time steps per sample (default: from checkpoint)")
    p.add_argument("--input", metavar="FILE", help=".npy inputs [N,...] or [T,N,...]; .npz with x (and y); "
                   "or event streams: .npy/.npz structured arrays (t, x, y, p) or .aedat4 (docs/events.md)")
    p.add_argument("--event-frames", type=int, metavar="T", help="bin each event recording into T frames of "
                   "equal time (tonic ToFrame n_time_bins)")
    p.add_argument("--event-window", type=float, metavar="US", help="bin events into frames of US "
                   "microseconds (tonic ToFrame time_window)")
    p.add_argument("--event-count", type=int, metavar="N", help="bin events into frames of N events "
                   "(tonic ToFrame event_count)")
    p.add_argument("--samples", type=int, help="use the first N samples of --input")
    p.add_argument("--time-axis", type=int, choices=[0, 1], default=d["time_axis"],
                   help="where time is in an --input sequence: 0 for [T,N,...] (default), 1 for [N,T,...]")
    p.add_argument("--simulate", action="store_true", help="simulate on the target and compare with PyTorch")
    p.add_argument("-o", "--outdir", help="write model.ir.npz and report.json here (and the target's files: "
                   f"{targets.artifacts_help()})")
    p.add_argument("--energy-model", default=d["energy_model"],
                   help="45nm (default), 45nm-int8, lemaire, loihi, or a TOML file")
    p.add_argument("--ann-sparse", action="store_true", help="ANN variant counts only nonzero weights")
    p.add_argument("--no-host", action="store_true",
                   help="refuse host operations (GELU, softmax, top-k, gathers, real gates, max of real values: "
                        "they need the embedded CPU / host) instead of compiling them as off-core partitions")
    p.add_argument("--keep-ratio", type=float, metavar="R",
                   help="fraction of tokens a keep-mask token selector keeps: prices its saving without --input "
                        "(a gather keeps k of N by construction and is priced without it; docs/energy.md)")
    p.add_argument("--firing-rates", metavar="R|NAME=R,...|FILE.json",
                   help="analytic SOPs from firing rates (no forward pass)")
    p.add_argument("--plot", metavar="FILE.png", help="per-layer stacked energy bar chart; with --input also "
                   "FILE_raster.png (spike raster) and FILE_rates.png (firing rate per layer)")
    p.add_argument("--plot-layers", metavar="A,B,...", type=lambda v: [n.strip() for n in v.split(",") if n.strip()],
                   help="layers of the spike raster, by module path (default: first, last and two between)")
    p.add_argument("--timeout", type=float, default=d["timeout"], help="seconds before a simulation is killed")
    p.add_argument("--workers", type=int, nargs="?", const=os.cpu_count() or 1, metavar="N",
                   help="simulate in N shards on Ray (N defaults to the core count); needs ray installed")
    p.add_argument("--ray-address", metavar="ADDR", help="run the shards on an existing Ray cluster")
    p.add_argument("--ray-connect-timeout", type=float, default=d["ray_connect_timeout"], metavar="S",
                   help="seconds to reach --ray-address before giving up")
    p.add_argument("--emit", choices=targets.cli_emissions(), default=d["emit"], help=targets.emit_help())
    p.add_argument("--patch-mask", metavar="FILE.npy", help="0/1 keep-mask over patches (H, W) or tokens (N,)")
    p.add_argument("--fixed-point", action="store_true",
                   help="quantize for Loihi-class integer hardware; simulate on Lava's fixed_pt models")
    p.add_argument("--chip", metavar="NAME|FILE.toml", help="map onto cores of loihi1, loihi2 or a chip profile "
                   "(default loihi2 with --fixed-point)")
    p.add_argument("--output-file", metavar="FILE", help="write the target's one file here instead of into -o "
                   "(export --format netx -o FILE sets it)")
    if verb == "export":
        p.add_argument("--format", choices=list(EXPORT_FORMATS), default="ir",
                       help="ir: the optimized IR and report.json to -o DIR (default); netx: a lava-dl netx "
                            "HDF5 file to -o FILE.net, quantized to netx's fixed point")
    p.add_argument("--check", action="store_true",
                   help="verify the IR after every pass, and exit with code 6 unless spike and prediction "
                        "agreement are exactly 1.0")
    return p


def inspect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snncompile inspect", description="Trace a model and print its IR as a table.")
    _common(p)
    return p


# Verbs in the spirit of tvmc; `snncompile MODEL ...` (no verb) is `compile`.
VERBS: dict[str, list[str]] = {
    "compile": [],                      # lower for --target (default lava) and report
    "simulate": ["--simulate"],         # compile, run on the target and compare with PyTorch
    "energy": ["--target", "energy"],   # the energy report only
    "export": ["--target", "ir"],       # write the optimized IR (model.ir.npz) and report.json to -o
    "inspect": [],                      # trace and print the IR as a table
    "sweep": [],                        # a grid of models × passes × precisions × cost models on Ray
    "doctor": [],                       # what is installed and usable
    "setup": [],                        # install an optional part (setup lava)
}


# export --format F: the target it compiles for, and whether -o names a file rather than a folder
EXPORT_FORMATS: dict[str, tuple[str, bool]] = {"ir": ("ir", False), "netx": ("netx", True)}


def _export_argv(argv: list[str]) -> list[str]:
    """``export`` arguments as compile arguments: ``--format F`` picks the target; for a
    file format ``-o FILE`` becomes ``--output-file FILE``."""
    fmt = next((a.split("=", 1)[1] for a in argv if a.startswith("--format=")), None)
    if "--format" in argv and argv.index("--format") + 1 < len(argv):
        fmt = argv[argv.index("--format") + 1]
    target, to_file = EXPORT_FORMATS.get(fmt or "ir", EXPORT_FORMATS["ir"])
    if to_file and any(a == "--output-file" or a.startswith("--output-file=") for a in argv):
        raise SnnCompileError(f"export --format {fmt} writes one file, named by -o, but --output-file names "
                              "another", "pass only -o FILE", EXIT_USAGE)
    out: list[str] = []
    args = iter(argv)
    for a in args:
        if to_file and (a in ("-o", "--outdir") or a.startswith("--outdir=")):
            name = next(args, "") if "=" not in a else a.split("=", 1)[1]
            if names_folder(name):
                raise SnnCompileError(f"export --format {fmt} writes one file, but -o {name} ends with '/': "
                                      "it names a folder", f"give a file name, e.g. -o {name.rstrip('/' + os.sep) or 'model.net'}",
                                      EXIT_USAGE)
            out += ["--output-file", name]
        else:
            out.append(a)
    return out + ["--target", target]


def sweep_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snncompile sweep",
                description="Compile, simulate and estimate a grid of tickets on Ray (see docs/sweep.md).")
    p.add_argument("spec", help="the sweep's TOML file")
    p.add_argument("-o", "--outdir", help="write sweep.json, sweep.csv and sweep.png here")
    p.add_argument("--workers", type=int, nargs="?", const=os.cpu_count() or 1, default=os.cpu_count() or 1,
                   metavar="N", help="Ray workers on this machine (default: the core count)")
    p.add_argument("--ray-address", metavar="ADDR", help="run on an existing Ray cluster")
    p.add_argument("--ray-connect-timeout", type=float, default=_defaults()["ray_connect_timeout"], metavar="S",
                   help="seconds to reach --ray-address before giving up")
    p.add_argument("--json", action="store_true", help="print the result table as one JSON object")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


_INCOMPLETE_HINT = "see the error column of the failed rows; fix those cells and rerun"


def _run_sweep(argv: list[str], err) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from snncompile import schema
    from snncompile.sweep import load_spec, run_sweep, write_outputs

    args = sweep_parser().parse_args(argv)
    checked = schema.validate("command line", {"--workers": args.workers,
                                               "--ray-connect-timeout": args.ray_connect_timeout}, schema.CLI)
    workers = checked["--workers"]
    spec = load_spec(args.spec)
    with Progress(TextColumn("sweep cells"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("cells", total=len(spec.cells))
        result = run_sweep(spec, workers=workers, address=args.ray_address,
                           connect_timeout=checked["--ray-connect-timeout"],
                           progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.outdir:
        result["outputs"] = write_outputs(result, args.outdir)
    incomplete = not result["complete"]
    message = f"{result['failed_rows']} of {len(result['rows'])} sweep rows failed: the sweep is incomplete"
    if args.json:
        doc = dict(result)
        if incomplete:
            doc.update(_error_doc(message, _INCOMPLETE_HINT, EXIT_BACKEND))
        sys.stdout.write(json.dumps(doc, default=str) + "\n")
    else:
        from snncompile.render import render_sweep

        out = Console()
        if not out.is_terminal:
            out = Console(width=150)
        render_sweep(result, out)
    if incomplete:
        err.print(f"[red]error:[/red] {message}", highlight=False)
        err.print(f"  [bold]hint:[/bold] {_INCOMPLETE_HINT}", highlight=False)
        return EXIT_BACKEND
    return 0


def _run_doctor(argv: list[str]) -> int:
    from snncompile import deps

    p = _Parser(prog="snncompile doctor", description="Show which dependencies are installed and usable, "
                "and the command that installs each missing one.")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = p.parse_args(argv)
    rows = deps.doctor()
    ok = all(str(r["usable"]).startswith("yes") for r in rows if r["required"])
    if args.json:
        sys.stdout.write(json.dumps({"version": _version(), "python": sys.executable, "dependencies": rows,
                                     "ready": ok}) + "\n")
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(_version()), title_justify="left")
        for col in ("package", "version", "usable", "needed for", "install"):
            table.add_column(col)
        for r in rows:
            mark = "green" if str(r["usable"]).startswith("yes") else ("red" if r["required"] else "yellow")
            table.add_row(r["package"], r["version"] or "-", f"[{mark}]{escape(str(r['usable']))}[/{mark}]",
                          escape(str(r["needed_for"])), escape(r["install"] or ""))
        Console(width=160).print(table)
    return 0 if ok else EXIT_USAGE


def _run_setup(argv: list[str], err) -> int:
    import shlex
    import subprocess

    from snncompile import deps

    p = _Parser(prog="snncompile setup", description="Install an optional part. lava: Lava (lava-nc 0.10.0) and "
                "lava-dl's netx (0.6.0) on Python 3.11, which their packages refuse to declare: the dependencies "
                "they need, then lava-nc and lava-dl without theirs (lava-dl's stray top-level tests package is "
                "removed); snncompile applies its import fixes for 3.11 when it loads them.")
    p.add_argument("part", choices=["lava"], help="what to install")
    p.add_argument("--dry-run", action="store_true", help="print the pip commands instead of running them")
    args = p.parse_args(argv)
    commands = deps.lava_setup_commands()
    for cmd in commands:
        line = " ".join(shlex.quote(c) for c in cmd)
        if args.dry_run:
            sys.stdout.write(line + "\n")
            continue
        err.print(f"running: {line}", highlight=False, markup=False)
        if subprocess.run(cmd).returncode != 0:
            raise SnnCompileError(f"pip failed while installing {args.part}",
                                  "see pip's message above; rerun with --dry-run to see the commands",
                                  EXIT_BACKEND)
    if args.dry_run:
        sys.stdout.write("# then: delete the top-level tests/ files lava-dl's wheel installs (its RECORD lists them)\n")
    else:
        deps.drop_lava_dl_tests()
        for module in ("lava", "lava.lib.dl.netx"):
            row = deps.doctor_row(module)
            err.print(f"{row['package']}: {row['usable']}", highlight=False, markup=False)
    return 0


def _quiet_libraries() -> None:
    # torch prints a "Triton not available" warning per import on CPU-only machines.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    import logging

    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)
    logging.getLogger("torch").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, as_json = "--debug" in argv, "--json" in argv
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True, soft_wrap=True)
    try:
        _quiet_libraries()
        return _dispatch(argv, err, as_json)
    except SnnCompileError as exc:
        return _user_error(err, exc, debug, as_json)
    except BrokenPipeError:
        return _closed_stdout()
    except KeyboardInterrupt as exc:   # Ctrl-C, or SIGTERM/SIGHUP during a Lava run: 128 + the signal
        signum = getattr(exc, "signum", 2)
        err.print(f"[red]interrupted[/red] ({escape(str(exc) or 'SIGINT')})")
        return _fail(as_json, "interrupted", "", 128 + signum)
    except Exception as exc:  # a bug in snncompile: still one clear line without --debug
        known = _missing_dependency(exc)
        if known is not None:
            return _user_error(err, known, debug, as_json)
        hint = "rerun with --debug and report the traceback"
        if debug:
            err.print_exception()
        else:
            err.print(f"[red]internal error:[/red] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False)
            err.print(f"  [bold]hint:[/bold] {hint}", highlight=False)
        return _fail(as_json, f"internal error: {type(exc).__name__}: {exc}", hint, 1)


def _dispatch(argv: list[str], err, as_json: bool) -> int:
    """Run the verb ``argv`` names (the default verb compiles) and print its report."""
    verb = argv[0] if argv and argv[0] in VERBS else None
    asks_help = any(a in ("-h", "--help", "--version") for a in argv)
    if verb in ("compile", "simulate", "energy", "export"):
        if verb == "export" and not asks_help and \
                not any(a in ("-o", "--outdir") or a.startswith("--outdir=") for a in argv):
            raise SnnCompileError("export needs an output folder (or, with --format netx, a file)",
                                  "pass -o DIR (or -o FILE.net with --format netx)", EXIT_USAGE)
        argv = _export_argv(argv[1:]) if verb == "export" else argv[1:] + VERBS[verb]
    own = {"sweep": lambda: _run_sweep(argv[1:], err), "doctor": lambda: _run_doctor(argv[1:]),
           "setup": lambda: _run_setup(argv[1:], err)}
    if verb in own:
        return own[verb]()
    # with --json stdout is one JSON object: what the model prints (in __init__, forward) goes to stderr
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        if verb == "inspect":
            args = inspect_parser().parse_args(argv[1:])
            from snncompile.api import inspect
            from snncompile.passes import parse_passes

            report = inspect(args.model, arch=args.arch, trust_pickle=args.trust_pickle,
                             input_shape=args.input_shape, masks=args.masks, nir_dt=args.nir_dt,
                             passes=parse_passes(args.passes, args.no_passes))
        else:
            args = compile_parser(verb if verb != "compile" else None).parse_args(argv)
            report = _run_compile(args, err)
    return _emit(report, args, err)


def _emit(report, args, err) -> int:
    """Print the report (JSON or tables); a failed --check still prints it, then exits 4."""
    from rich.markup import escape

    mismatch = getattr(args, "check", False) and not _all_agree(report)
    try:
        _print_report(report, args, mismatch)
    except OSError as exc:   # stdout closed (EPIPE) or full (ENOSPC on /dev/full, a full disk)
        if not isinstance(exc, BrokenPipeError):
            err.print(f"[red]error:[/red] cannot write to stdout: {escape(exc.strerror or str(exc))}")
        return _closed_stdout()
    if mismatch:
        err.print(f"[red]error:[/red] {_MISMATCH}")
        err.print(f"  [bold]hint:[/bold] {_MISMATCH_HINT}", highlight=False)
        return EXIT_MISMATCH
    return 0


def _user_error(err, exc: SnnCompileError, debug: bool, as_json: bool) -> int:
    if debug:
        err.print_exception()
    from rich.markup import escape  # messages carry paths and extras like [spikingjelly]: not markup

    err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, markup=True)
    if exc.hint:
        err.print(f"  [bold]hint:[/bold] {escape(exc.hint)}", highlight=False)
    return _fail(as_json, exc.message, exc.hint, exc.exit_code)


def _missing_dependency(exc: Exception) -> SnnCompileError | None:
    """A failed import of torch, spikingjelly, Lava or another optional part, as the user's error."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    from snncompile.deps import missing

    return missing(exc)


_MISMATCH = "the target's spikes differ from PyTorch's (--check)"
_MISMATCH_HINT = "see per_layer_spike_agreement for the first layer that differs"


def _all_agree(report) -> bool:
    sim = report.simulation or {}
    return sim.get("spike_agreement") == 1.0 and sim.get("prediction_agreement") == 1.0


def _error_doc(message: str, hint: str, code: int) -> dict:
    return {"error": message, "hint": hint, "exit_code": code}


def _print_report(report, args: argparse.Namespace, mismatch: bool) -> None:
    if sys.stdout is None:   # started with stdout closed (`>&-`)
        raise BrokenPipeError("stdout is closed")
    if args.json:
        text = report.to_json()
        if mismatch:  # still one object: the report, with the error beside it
            text = json.dumps({**json.loads(text), **_error_doc(_MISMATCH, _MISMATCH_HINT, EXIT_MISMATCH)})
        sys.stdout.write(text + "\n")
    else:
        from rich.console import Console

        from snncompile.render import render

        out = Console()
        if not out.is_terminal:  # pipes and files get a wide table instead of wrapped cells
            out = Console(width=150)
        render(report, out, verbose=args.verbose)
    sys.stdout.flush()   # a full or closed stdout fails here, inside the handler, not at exit


def _fail(as_json: bool, message: str, hint: str, code: int) -> int:
    """With --json a failure is one JSON object on stdout too (scripts read stdout)."""
    if as_json and sys.stdout is not None:
        try:
            sys.stdout.write(json.dumps(_error_doc(message, hint, code)) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):   # ValueError: stdout already closed
            _closed_stdout()
    return code


def _closed_stdout() -> int:
    """The reader of stdout went away (``| head``, a closed pipe): exit quietly, and point
    stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        if sys.stdout is not None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_PIPE


def _run_compile(args: argparse.Namespace, err) -> object:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from snncompile import schema
    from snncompile.api import compile as compile_model
    from snncompile.passes import parse_passes

    passes = parse_passes(args.passes, args.no_passes)
    # flags are named as typed (--timeout), before the API names them as arguments (timeout=)
    schema.validate("command line", {"--steps": args.steps, "--samples": args.samples, "--timeout": args.timeout,
                                     "--workers": args.workers, "--event-frames": args.event_frames,
                                     "--event-window": args.event_window, "--event-count": args.event_count,
                                     "--ray-connect-timeout": args.ray_connect_timeout, "--keep-ratio": args.keep_ratio},
                    schema.CLI)
    if args.check and not args.simulate:
        raise SnnCompileError("--check compares a simulation with PyTorch, but nothing is simulated",
                              "add --simulate (and --input FILE), or drop --check", EXIT_USAGE)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        tasks: dict[str, int] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        return compile_model(args.model, args.target, steps=args.steps, input=args.input,
                             samples=args.samples, simulate_on_target=args.simulate, outdir=args.outdir,
                             arch=args.arch, trust_pickle=args.trust_pickle,
                             input_shape=args.input_shape, energy_model=args.energy_model,
                             timeout=args.timeout, progress=progress, passes=passes,
                             masks=args.masks, patch_mask=args.patch_mask, fixed_point=args.fixed_point,
                             chip=args.chip, ann_sparse=args.ann_sparse, firing_rates=args.firing_rates,
                             plot=args.plot, emit=args.emit, workers=args.workers,
                             ray_address=args.ray_address, ray_connect_timeout=args.ray_connect_timeout,
                             nir_dt=args.nir_dt, verify_ir=args.check, time_axis=args.time_axis,
                             event_frames=args.event_frames, event_window=args.event_window,
                             event_count=args.event_count, plot_layers=args.plot_layers or None,
                             output_file=args.output_file,
                             no_host=args.no_host, keep_ratio=args.keep_ratio)
