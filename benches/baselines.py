"""repflow against the Python baselines, side by side, on the same task and
the same initial weights.

Runs `repflow` on the paper-size cube task (d = 3, k = 1, c = c_max / 2,
D = 100, N = 128, frozen readout, BCE), reads the task and the initial
weights back from its file, and runs on them:

- the Tanh gradient flow to t = 1000 of ten networks (initial weights
  seeds 0-9) with SciPy's solve_ivp (DOP853, rtol 1e-8, atol 1e-10) and,
  when JAX and diffrax are installed, with diffrax's Dopri8 under jit (each
  solve timed after compiling, best of three), against repflow's Tanh
  flows of the same networks run one after another in one process; once
  with the 60 saved times of repflow's default (every solver returns the
  state there), once with the end state only; the medians over the ten
  networks are compared;
- the ReLU flow with SciPy, stopped after a wall-clock budget (it slides
  along the kinks and its step size collapses), against repflow's
  event-driven ReLU flow;
- SGD with the study's protocol (5000 samples, batch 64, eta 0.1) in NumPy
  (float64), per step, against repflow's SGD (float64 and float32), and
  PyTorch's (float32 and float64) when it is installed.

It prints each figure and the ratio. Single core: run it as
`OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 benches/baselines.py`.
Needs numpy, scipy and h5py (pip install numpy scipy h5py) and a release
build (`cargo build --release`); pip install jax diffrax torch for the
other two.
"""

import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from scipy.integrate import solve_ivp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPFLOW = os.path.join(ROOT, "target", "release", "repflow")

SCENARIO = """
name = "baselines"
[network]
activations = ["tanh", "relu"]
[seeds]
networks = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
[flow]
rtol = 1e-8
atol = 1e-10
saves = SAVES
[sgd]
enabled = false
[geometry]
enabled = false
"""

# The flows are timed on these networks (the same task, ten initial
# weights) and compared by their medians: repflow runs them one after
# another in one process, as the solvers below are timed after warming up.
SEEDS = range(10)


# SGD alone, two snapshots, so that the time per step is the steps' own.
SGD_ONLY = """
name = "baselines-sgd"
[network]
activations = ["tanh"]
[flow]
enabled = false
saves = 2
[sgd]
epochs = 50
precision = "PRECISION"
[geometry]
enabled = false
"""


def run_repflow(workdir, text, name):
    scenario = os.path.join(workdir, f"{name}.toml")
    out = os.path.join(workdir, f"{name}.h5")
    with open(scenario, "w") as f:
        f.write(text)
    subprocess.run([REPFLOW, "-q", "run", scenario, "-o", out, "-j", "1"], check=True)
    return out


def gradient(W, b, J, b_out, X, Y, act):
    """-dL/dW and -dL/db for BCE with a frozen readout (SCIENCE.md)."""
    U = X @ W.T + b
    if act == "tanh":
        H = np.tanh(U)
        slope = 1.0 - H * H
    else:
        H = np.maximum(U, 0.0)
        slope = (U > 0).astype(float)
    Z = H @ J.T + b_out
    E = 1.0 / (1.0 + np.exp(-Z)) - Y
    delta = (E @ J) * slope
    p = X.shape[0]
    return -(delta.T @ X) / p, -delta.mean(axis=0)


def scipy_flow(f, act, seed, budget_seconds, saves):
    """SciPy's DOP853 on network `seed`'s flow, at repflow's saved times when
    `saves`, else the end state only: (seconds, t reached, evaluations)."""
    X = f["task/inputs"][()]
    Y = f["task/targets"][()]
    run = f[f"runs/{act}-s{seed}"]
    W0, b0 = run["init/W"][()], run["init/b"][()]
    J, b_out = run["init/J"][()], run["init/b_out"][()]
    n, d = W0.shape
    start = time.perf_counter()

    def rhs(t, theta):
        if time.perf_counter() - start > budget_seconds:
            raise TimeoutError(t)
        W = theta[: n * d].reshape(n, d)
        gW, gb = gradient(W, theta[n * d :], J, b_out, X, Y, act)
        return np.concatenate([gW.ravel(), gb])

    theta0 = np.concatenate([W0.ravel(), b0])
    # The saved times of repflow's run, so that both do the same work.
    times = run["flow/t"][()] if saves else None
    try:
        sol = solve_ivp(rhs, (0.0, 1000.0), theta0, method="DOP853", rtol=1e-8,
                        atol=1e-10, t_eval=times)
        return time.perf_counter() - start, 1000.0, sol.nfev
    except TimeoutError as e:
        return time.perf_counter() - start, float(e.args[0]), None


def diffrax_flow(f, saves):
    """The Tanh flow of every network in SEEDS with diffrax's Dopri8 under
    jit, at repflow's saved times when `saves`, else the end state only;
    returns each solve's seconds (the best of three, after compiling), or
    None without JAX and diffrax."""
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        import diffrax
        import jax.numpy as jnp
    except ImportError:
        return None
    X = jnp.asarray(f["task/inputs"][()])
    Y = jnp.asarray(f["task/targets"][()])
    run = f["runs/tanh-s0"]
    J, b_out = jnp.asarray(run["init/J"][()]), jnp.asarray(run["init/b_out"][()])
    n, d = run["init/W"].shape
    saveat = (diffrax.SaveAt(ts=jnp.asarray(run["flow/t"][()])) if saves
              else diffrax.SaveAt(t1=True))

    def rhs(t, theta, args):
        W, b = theta[: n * d].reshape(n, d), theta[n * d :]
        H = jnp.tanh(X @ W.T + b)
        E = jax.nn.sigmoid(H @ J.T + b_out) - Y
        delta = (E @ J) * (1.0 - H * H)
        p = X.shape[0]
        return jnp.concatenate([(-(delta.T @ X) / p).ravel(), -delta.mean(axis=0)])

    @jax.jit
    def solve(theta0):
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(rhs), diffrax.Dopri8(), 0.0, 1000.0, None, theta0,
            stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-10),
            saveat=saveat, max_steps=1_000_000)
        return sol.ys, sol.stats["num_steps"]

    seconds = []
    for seed in SEEDS:
        init = f[f"runs/tanh-s{seed}/init"]
        theta0 = jnp.concatenate([jnp.asarray(init["W"][()]).ravel(),
                                  jnp.asarray(init["b"][()])])
        jax.block_until_ready(solve(theta0))
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            jax.block_until_ready(solve(theta0))
            best = min(best, time.perf_counter() - start)
        seconds.append(best)
    return seconds


def numpy_sgd_step_seconds(f, steps=300):
    X = f["task/inputs"][()]
    Y = f["task/targets"][()]
    run = f["runs/tanh-s0"]
    W, b = run["init/W"][()].copy(), run["init/b"][()].copy()
    J, b_out = run["init/J"][()], run["init/b_out"][()]
    rng = np.random.default_rng(0)
    cond = rng.integers(0, X.shape[0], 5000)
    Xs = X[cond] + rng.standard_normal((5000, X.shape[1]))
    Ys = Y[cond]
    start = time.perf_counter()
    for s in range(steps):
        lo = (s * 64) % (5000 - 64)
        gW, gb = gradient(W, b, J, b_out, Xs[lo : lo + 64], Ys[lo : lo + 64], "tanh")
        W += 0.1 * gW
        b += 0.1 * gb
    return (time.perf_counter() - start) / steps


def torch_sgd_step_seconds(f, dtype, steps=300):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    dtype = getattr(torch, dtype)
    X = torch.tensor(f["task/inputs"][()], dtype=dtype)
    run = f["runs/tanh-s0"]
    W = torch.tensor(run["init/W"][()], dtype=dtype, requires_grad=True)
    b = torch.tensor(run["init/b"][()], dtype=dtype, requires_grad=True)
    J = torch.tensor(run["init/J"][()], dtype=dtype)
    b_out = torch.tensor(run["init/b_out"][()], dtype=dtype)
    Y = torch.tensor(f["task/targets"][()], dtype=dtype)
    cond = torch.randint(0, X.shape[0], (5000,))
    Xs, Ys = X[cond] + torch.randn(5000, X.shape[1], dtype=X.dtype), Y[cond]
    opt = torch.optim.SGD([W, b], lr=0.1)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    start = time.perf_counter()
    for s in range(steps):
        lo = (s * 64) % (5000 - 64)
        z = torch.tanh(Xs[lo : lo + 64] @ W.T + b) @ J.T + b_out
        loss = loss_fn(z, Ys[lo : lo + 64]) / 64
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main():
    if not os.path.exists(REPFLOW):
        sys.exit("build repflow first: cargo build --release")
    with tempfile.TemporaryDirectory() as workdir:
        ours_step = {}
        for precision in ("f64", "f32"):
            text = SGD_ONLY.replace("PRECISION", precision)
            with h5py.File(run_repflow(workdir, text, f"sgd-{precision}")) as g:
                sgd = g["runs/tanh-s0/sgd"].attrs
                ours_step[precision] = sgd["seconds"] / sgd["steps"]

        print(f"paper-size cube net, Tanh flow to t = 1000 at rtol 1e-8, one core, "
              f"median over {len(SEEDS)} networks")
        for saves, label in ((True, "60 saved times"), (False, "end state only")):
            text = SCENARIO.replace("SAVES", "60" if saves else "2")
            with h5py.File(run_repflow(workdir, text, f"flows-{int(saves)}")) as f:
                ours = [f[f"runs/tanh-s{s}/flow"].attrs["seconds"] for s in SEEDS]
                evals = [f[f"runs/tanh-s{s}/flow"].attrs["rhs_evals"] for s in SEEDS]
                sp = [scipy_flow(f, "tanh", s, 600.0, saves) for s in SEEDS]
                dfx = diffrax_flow(f, saves)
            mine = np.median(ours)
            print(f"  {label}: repflow {mine * 1e3:6.2f} ms ({np.median(evals):.0f} evals)")
            scipy_s = np.median([x[0] for x in sp])
            print(f"    scipy DOP853   {scipy_s * 1e3:6.1f} ms "
                  f"({np.median([x[2] for x in sp]):.0f} evals)   ratio {scipy_s / mine:.1f}x")
            if dfx is None:
                print("    (JAX/diffrax not installed: pip install jax diffrax to compare)")
            else:
                print(f"    diffrax Dopri8 {np.median(dfx) * 1e3:6.1f} ms "
                      f"(jit, after compiling)   ratio {np.median(dfx) / mine:.1f}x")

        path = os.path.join(workdir, "flows-1.h5")
        with h5py.File(path) as f:
            relu = f["runs/relu-s0/flow"].attrs["seconds"]
            secs, t, _ = scipy_flow(f, "relu", 0, 60.0, True)
            print(f"  relu  scipy DOP853 reached t = {t:.3g} of 1000 in {secs:.0f} s   "
                  f"repflow reached t = 1000 in {relu:.3f} s")

            step = numpy_sgd_step_seconds(f)
            o64, o32 = ours_step["f64"], ours_step["f32"]
            print("SGD step, study protocol (batch 64, D = 100, N = 128), tanh, "
                  "per step over a whole run")
            print(f"  repflow f64 {o64 * 1e6:7.1f} us   f32 {o32 * 1e6:7.1f} us")
            print(f"  numpy f64   {step * 1e6:7.1f} us   ratio {step / o64:.1f}x (f64)")
            for dtype, ours_p in (("float32", o32), ("float64", o64)):
                torch_step = torch_sgd_step_seconds(f, dtype)
                if torch_step is None:
                    print("  (PyTorch not installed: pip install torch to compare)")
                    break
                print(f"  torch {dtype} {torch_step * 1e6:7.1f} us   ratio "
                      f"{torch_step / ours_p:.1f}x (repflow in the same precision)")

if __name__ == "__main__":
    main()
