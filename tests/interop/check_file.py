"""Reads a repflow file with h5py, the way a researcher would, and checks it
against the layout the README documents and against `repflow inspect`.

Usage: python3 check_file.py FILE.h5 INSPECT_OUTPUT.txt
Exits non-zero, naming the first problem, when anything disagrees.
"""

import sys

import h5py
import numpy as np


def fail(message):
    print(f"interop check failed: {message}", file=sys.stderr)
    sys.exit(1)


def text(value):
    """h5py returns fixed-length strings as bytes, variable ones as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def main(path, inspect_path):
    with h5py.File(path, "r") as f:
        if text(f.attrs["format"]) != "repflow":
            fail("root attribute format is not 'repflow'")
        for key in ["format_version", "repflow_version", "scenario", "created", "status"]:
            if key not in f.attrs:
                fail(f"root attribute {key} is missing")
        if "[flow]" not in text(f.attrs["scenario"]):
            fail("the scenario attribute does not hold the resolved TOML")

        inputs, targets = f["task/inputs"][()], f["task/targets"][()]
        p, d = inputs.shape
        k = targets.shape[1]
        if targets.shape[0] != p:
            fail(f"task/targets has {targets.shape[0]} rows for {p} conditions")
        norms = (inputs**2).sum(axis=1)
        if text(f["task"].attrs["kind"]) == "cube" and not np.allclose(norms, d):
            fail(f"cube inputs should have |x|^2 = D = {d}, got {norms}")

        runs = f["runs"]
        if len(runs) == 0:
            fail("no runs")
        for name, run in runs.items():
            n = run["init/W"].shape[0]
            if run["init/W"].shape != (n, d) or run["init/J"].shape != (k, n):
                fail(f"{name}: init shapes {run['init/W'].shape}, {run['init/J'].shape}")
            for part in ["flow", "sgd"]:
                if part not in run:
                    continue
                g = run[part]
                t = g["t"][()]
                T = len(t)
                checks = {
                    "W": (T, n, d),
                    "b": (T, n),
                    "loss": (T,),
                    "accuracy": (T,),
                    "hidden": (T, p, n),
                }
                for ds, shape in checks.items():
                    if g[ds].shape != shape:
                        fail(f"{name}/{part}/{ds} has shape {g[ds].shape}, not {shape}")
                if not np.all(np.diff(t) > 0):
                    fail(f"{name}/{part}/t does not increase")
                if not np.array_equal(g["W"][0], run["init/W"][()]):
                    fail(f"{name}/{part} does not start at the initial weights")
                # The hidden responses are f(W x + b) of the stored weights.
                W, b, h = g["W"][-1], g["b"][-1], g["hidden"][-1]
                u = inputs @ W.T + b
                act = text(run.attrs["activation"])
                f_u = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0)}.get(act)
                if f_u is not None and not np.allclose(f_u(u), h, atol=1e-12):
                    fail(f"{name}/{part}/hidden is not {act}(W x + b)")
                for attr in ["stop_reason", "t_reached"]:
                    if attr not in g.attrs:
                        fail(f"{name}/{part} lacks attribute {attr}")
                if part == "sgd" and g["step"].shape != (T,):
                    fail(f"{name}/sgd/step has shape {g['step'].shape}")

        # One trajectory value against the CLI's own reading of the file.
        found = 0
        for line in open(inspect_path):
            cols = line.split()
            if len(cols) >= 7 and cols[0] in runs and cols[1] in ("flow", "sgd"):
                name, part = cols[0], cols[1]
                ours = float(cols[5])
                theirs = runs[name][part]["loss"][-1]
                if abs(ours - theirs) > 1e-9 * max(abs(theirs), 1e-300):
                    fail(f"{name}/{part}: inspect says final loss {ours}, h5py reads {theirs}")
                found += 1
        if found == 0:
            fail("no run lines in the inspect output")
        print(f"h5py read {path}: {len(runs)} runs, {found} final losses agree with inspect")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
