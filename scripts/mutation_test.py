"""Mutation testing of pccore: does the test suite catch realistic single-point bugs?

Each mutant changes one snippet of one file (an exact text, found exactly once) and runs a
targeted subset of the tests against it; the mutant is *killed* when a test fails, and
*survives* when they all pass. The score is killed / (killed + survived); survivors must be
explained as equivalent (``EQUIVALENT`` below) or get a test.

The working tree is never touched: the tracked and untracked-but-not-ignored files are
copied to a temporary folder (``git ls-files`` + shutil) and every mutant is applied and
reverted there. Tests run in that copy with ``PYTHONPATH`` = the copy's ``.``,
``backends`` and ``plugins`` ahead of the editable install (whose import finder comes
after ``sys.path``); a check before the first mutant asserts every pccore package,
backend and plugin is imported from the copy.

Run (from the repository root; about 15 minutes on two shared cores)::

    .venv/bin/python scripts/mutation_test.py            # every mutant, writes scripts/mutation_results.md
    .venv/bin/python scripts/mutation_test.py --list     # the mutants, no test run
    .venv/bin/python scripts/mutation_test.py --check    # every snippet found exactly once?
    .venv/bin/python scripts/mutation_test.py --only torch-asarray-alias ce-grad-one-hot

Each mutant names its tests as pytest node ids; they run with ``-x -q -p no:cacheprovider``,
single process, ``PCCORE_BACKENDS=numpy`` unless the mutant is backend-specific. A baseline
runs every selection once on the unmutated copy first (one pytest run per backend
setting), so a kill always means "this change made a passing test fail"; a mutant whose
tests fail without it is reported as not run. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "scripts" / "mutation_results.md"


@dataclass(frozen=True)
class Mutant:
    """One single-point bug: in ``file`` the exact ``original`` snippet (found once) becomes
    ``replacement``; ``tests`` are the pytest arguments that should catch it; ``backends``
    the PCCORE_BACKENDS of the run ("" = every installed backend); ``timeout`` (seconds) replaces
    the default for a mutant that makes its tests hang."""

    id: str
    area: str
    file: str
    original: str
    replacement: str
    tests: tuple
    why: str
    backends: str = "numpy"
    timeout: float | None = None


M = Mutant

MUTANTS = [
    # ------------------------------------------------------------ energies
    M("energy-half", "energies", "pccore/energy.py",
      "    return 0.5 * xp.sum(v * v)", "    return xp.sum(v * v)",
      ('tests/test_energy.py::test_energy_value_by_hand', 'tests/test_energy.py::test_error_energy_grad_matches_finite_differences'), "the 1/2 of the error energy dropped"),
    M("eo-grad-drops-error", "energies", "pccore/energy.py",
      "        grads[l] = errors[l] + g", "        grads[l] = g",
      ('tests/test_energy.py::test_error_energy_grad_matches_finite_differences',), "dE/de_l without its own e_l term"),
    M("so-output-error-sign", "energies", "pccore/energy.py",
      "    eps.append(-loss.grad(k.xp, yhat, y))", "    eps.append(loss.grad(k.xp, yhat, y))",
      ('tests/test_energy.py::test_state_energy_grad_matches_finite_differences',), "eps_{L-1} = +dC/dyhat instead of -dC/dyhat"),
    M("weight-grad-sign", "energies", "pccore/energy.py",
      "        tuple(-g for g in block.vjp(k, p, r, e, False, True)[1])",
      "        tuple(g for g in block.vjp(k, p, r, e, False, True)[1])",
      ('tests/test_energy.py::test_local_weight_grads_match_finite_differences',), "local weight gradients with the wrong sign"),
    M("local-sweep-errors-ignored", "energies", "pccore/energy.py",
      "        s, r = block.forward(k, p, s + e)", "        s, r = block.forward(k, p, s)",
      ('tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-eo-mlp-float64]', 'tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-so-mlp-float64]'),
      "the EO training step forgets the inferred errors in its weight-gradient sweep"),
    M("energy-sum-overwrites", "energies", "pccore/energy.py",
      "        total = total + half_sq(xp, e)", "        total = half_sq(xp, e)",
      ('tests/test_energy.py::test_energy_value_by_hand',), "the energy keeps only the last layer's term"),
    # ------------------------------------------------------- closed forms
    M("closed-form-precision", "closed forms", "pccore/analytic/linear.py",
      "    S = xp.eye(y.shape[1], dtype=y.dtype, device=compat.device(y)) * inv_precision",
      "    S = xp.eye(y.shape[1], dtype=y.dtype, device=compat.device(y))",
      ('tests/test_analytic.py::test_matches_independent_host_solution',), "the output precision ignored by the closed-form equilibrium"),
    M("closed-form-states", "closed forms", "pccore/analytic/linear.py",
      "        Q = Pk if Q is None else Q @ Ws[k].T + Pk", "        Q = Pk",
      ('tests/test_analytic.py::test_matches_independent_host_solution',), "equilibrium states without the propagated errors"),
    M("closed-form-mean", "closed forms", "pccore/analytic/linear.py",
      "    return 0.5 * xp.sum(r * Z) / r.shape[0]", "    return 0.5 * xp.sum(r * Z)",
      ('tests/test_analytic.py::test_parts_of_the_equilibrium', 'tests/test_analytic.py::test_gradients_vanish_and_energy_is_sum_of_F_star'), "batch mean of F* becomes the sum"),
    M("closed-form-residual", "closed forms", "pccore/analytic/linear.py",
      "            W = W + xp.eye(W.shape[0], dtype=W.dtype, device=compat.device(W))", "            W = W",
      ('tests/test_analytic.py::test_closed_form_with_linear_residual_blocks',), "a residual block's identity shortcut forgotten"),
    # ------------------------------------------------------------ inference
    M("rms-not-mean", "inference", "pccore/inference/step.py",
      "    return xp.sqrt(total / count)", "    return xp.sqrt(total)",
      ('tests/test_inference.py::test_tol_stops_early_and_flags_convergence',), "the tol test on the gradient norm, not its RMS"),
    M("so-start-aliases-f0x", "inference", "pccore/inference/step.py",
      "    states = [k.xp.asarray(f0x, copy=True)]", "    states = [k.xp.asarray(f0x)]",
      ('tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-so-mlp-float64]',),
      "the SO training step's first state aliases f_0(x), which the in-place NumPy optimizer then moves"),
    M("converged-flag", "inference", "pccore/inference/driver.py",
      "        converged = met_tol or stopped == \"tol\"", "        converged = stopped == \"tol\"",
      ('tests/test_inference.py::test_tol_stops_early_and_flags_convergence',
       'tests/test_mutants.py::test_tol_met_at_the_last_iteration_is_converged'),
      "a run meeting tol at its last step not flagged converged"),
    M("observed-iterations", "inference", "pccore/inference/driver.py",
      "        n += int(taken)", "        n = int(taken)",
      ('tests/test_trackers.py::test_history_records_every_kth_step_and_the_last', 'tests/test_trackers.py::test_history_with_tol_records_the_stopping_step'),
      "an observed run reports only the fused tail's iteration count"),
    M("inference-hyper-dropped", "inference", "pccore/inference/gradient.py",
      "        return Descent(rt.optimizer(self.optimizer, lr=self.lr, **self.hyper))",
      "        return Descent(rt.optimizer(self.optimizer, lr=self.lr))",
      ('tests/test_mutants.py::test_inference_momentum_is_used',), "inference optimizer hyper-parameters (momentum=...) ignored"),
    M("nan-inputs-blamed-on-lr", "inference", "pccore/inference/driver.py",
      "            self._check_finite_inputs(net, x, y)\n            raise InferenceDiverged(",
      "            raise InferenceDiverged(",
      ('tests/test_bad_input.py::test_nan_inputs_are_named_not_blamed_on_the_lr',), "NaN inputs reported as a diverged lr"),
    # ----------------------------------------------------------- optimizers
    M("numpy-adam-bias-correction", "optimizers", "backends/pccore_numpy/optim.py",
      "        c1, c2 = 1 - h[\"b1\"] ** t, 1 - h[\"b2\"] ** t", "        c1, c2 = 1 - h[\"b1\"] ** t, 1 - h[\"b2\"]",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "Adam's second-moment bias correction without t"),
    M("numpy-momentum-decay", "optimizers", "backends/pccore_numpy/optim.py",
      "                v *= h[\"momentum\"]\n", "                v *= 1.0\n",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "momentum never decays the velocity"),
    M("numpy-sgd-sign", "optimizers", "backends/pccore_numpy/optim.py",
      "                p -= h[\"lr\"] * g", "                p += h[\"lr\"] * g",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "SGD climbs the gradient"),
    M("torch-momentum-decay", "optimizers", "backends/pccore_torch/optim.py",
      "            torch._foreach_mul_(vs, h[\"momentum\"])", "            torch._foreach_mul_(vs, 1.0)",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "torch momentum never decays", "torch"),
    M("torch-adam-step", "optimizers", "backends/pccore_torch/optim.py",
      "        step = h[\"lr\"] / (1 - torch.pow(h[\"b1\"], t))", "        step = h[\"lr\"]",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "torch Adam without first-moment bias correction",
      "torch"),
    M("jax-momentum-dropped", "optimizers", "backends/pccore_jax/optim.py",
      "            return optax.sgd(h[\"lr\"], momentum=h[\"momentum\"])", "            return optax.sgd(h[\"lr\"])",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "jax 'momentum' is plain SGD", "jax"),
    M("jax-adam-b1-default", "optimizers", "backends/pccore_jax/optim.py",
      "        return optax.adam(h[\"lr\"], b1=h[\"b1\"], b2=h[\"b2\"], eps=h[\"eps\"])",
      "        return optax.adam(h[\"lr\"], b2=h[\"b2\"], eps=h[\"eps\"])",
      ('tests/test_backends.py::test_optimizer_updates_match_hand_computation',), "jax Adam ignores a non-default b1", "jax"),
    M("hyper-range-momentum", "optimizers", "pccore/checks.py",
      "    \"momentum\": dict(low=0.0, high=1.0, high_open=True),", "    \"momentum\": dict(low=0.0),",
      ('tests/test_bad_input.py::test_optimizer_settings_are_checked_in_the_core',), "momentum >= 1 accepted"),
    # ------------------------------------------------------------- training
    M("weight-grad-not-divided", "training", "pccore/train/step.py",
      "    scaled = tuple(g / batch for g in structure.flatten(grads))",
      "    scaled = tuple(g for g in structure.flatten(grads))",
      ('tests/test_mutants.py::test_sgd_step_divides_the_weight_gradient_by_the_batch',), "the weight step uses the batch sum, not the mean"),
    M("shuffle-ignores-seed", "training", "pccore/train/trainer.py",
      "        xs, ys = resident.epoch(t.seed + epoch, t.batch_size)",
      "        xs, ys = resident.epoch(epoch, t.batch_size)",
      ('tests/test_mutants.py::test_shuffling_uses_seed_plus_epoch',), "the trainer shuffles with the epoch only, whatever its seed"),
    M("shuffle-ignores-epoch", "training", "pccore/train/trainer.py",
      "        xs, ys = resident.epoch(t.seed + epoch, t.batch_size)",
      "        xs, ys = resident.epoch(t.seed, t.batch_size)",
      ('tests/test_mutants.py::test_shuffling_uses_seed_plus_epoch',), "every epoch sees the batches in the same order"),
    M("bp-loss-not-mean", "training", "pccore/train/step.py",
      "        return (tuple(flat), opt_state), (loss / b, loss / b)",
      "        return (tuple(flat), opt_state), (loss, loss)",
      ('tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-bp-mlp-float64]',),
      "the compiled bp step reports the batch-summed loss"),
    M("pc-extra-inference-step", "training", "pccore/train/step.py",
      "        (values, _, _), _ = k.run_loop(s, (tuple(values), inner, norm), self.iters - 1, args, self.until)",
      "        (values, _, _), _ = k.run_loop(s, (tuple(values), inner, norm), self.iters, args, self.until)",
      ('tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-eo-mlp-float64]', 'tests/test_train_step.py::test_compiled_step_matches_eager_step[numpy-so-mlp-float64]'),
      "the compiled PC step runs one inference step too many"),
    M("resume-skips-nothing", "training", "pccore/train/trainer.py",
      "        for i in range(skip, xs.shape[0]):", "        for i in range(0, xs.shape[0]):",
      ('tests/test_training.py::test_resume_from_the_middle_of_an_epoch',), "resuming mid-epoch replays the used batches"),
    M("last-update-unchecked", "training", "pccore/train/trainer.py",
      "                    _check_weights(self.session, self.trainer)\n                    self._save(epoch, done)",
      "                    self._save(epoch, done)",
      ('tests/test_bad_input.py::test_overflowing_weight_lr_stops_training[numpy-bp-compiled]',), "inf weights of the last update returned silently"),
    M("data-not-checked", "training", "pccore/train/trainer.py",
      "        _check_data(data, (\"train\", \"test\"))", "        _check_data(data)",
      ('tests/test_bad_input.py::test_training_data_with_nan_is_refused_before_training',), "NaN data trains until the loss diverges"),
    # ------------------------------------------------------------------ I/O
    M("load-default-float32", "I/O", "pccore/io.py",
      "        runtime = make_runtime(\"numpy\", dtype=dtype)", "        runtime = make_runtime(\"numpy\")",
      ('tests/test_mutants.py::test_float64_network_loads_as_float64_without_runtime',), "a float64 network loads as float32 without a runtime"),
    M("checksum-ignores-layout", "I/O", "pccore/io.py",
      "        digest.update(f\"{key}|{value.dtype.str}|{value.shape}|\".encode())",
      "        digest.update(f\"{key}|\".encode())",
      ('tests/test_mutants.py::test_checksum_covers_shape_and_dtype',), "the checksum misses a reshaped or retyped array of the same bytes"),
    M("checksum-not-checked", "I/O", "pccore/io.py",
      "    if \"checksum\" in arrays and str(arrays[\"checksum\"]) != _checksum(arrays):",
      "    if False and \"checksum\" in arrays and str(arrays[\"checksum\"]) != _checksum(arrays):",
      ('tests/test_io.py::test_damaged_files_are_refused',), "damaged files load"),
    M("stale-tmp-kills-live-writer", "I/O", "pccore/io.py",
      "                stale = not _alive(int(pid))", "                stale = True",
      ('tests/test_bad_input.py::test_stale_tmp_files_of_a_crashed_save_are_removed', 'tests/test_bad_input.py::test_stale_tmp_files_of_a_checkpoint_are_removed'), "the cleanup removes the temporary file of a save in progress"),
    M("stale-tmp-kept", "I/O", "pccore/io.py",
      "    remove_stale_tmp(path)\n", "\n",
      ('tests/test_bad_input.py::test_stale_tmp_files_of_a_crashed_save_are_removed', 'tests/test_bad_input.py::test_stale_tmp_files_of_a_checkpoint_are_removed'), "temporary files of crashed saves pile up"),
    M("param-shape-unchecked", "I/O", "pccore/io.py",
      "            if p is None or tuple(p.shape) != tuple(shape):", "            if p is None:",
      ('tests/test_mutants.py::test_parameter_of_the_wrong_shape_is_named',), "a parameter of the wrong shape loads (and fails later)"),
    # --------------------------------------------------------------- losses
    M("ce-grad-one-hot", "losses", "pccore/losses.py",
      "        return p * xp.sum(y, axis=1, keepdims=True) - y", "        return p - y",
      ('tests/test_mutants.py::test_cross_entropy_with_soft_targets_matches_finite_differences',), "the cross-entropy gradient assumes targets that sum to one"),
    M("mse-grad-precision", "losses", "pccore/losses.py",
      "        return self.precision * (yhat - y)", "        return yhat - y",
      ('tests/test_mutants.py::test_mse_with_precision_by_hand',), "the MSE gradient ignores the precision"),
    M("ce-hvp-scale", "losses", "pccore/losses.py",
      "        return xp.sum(y, axis=1, keepdims=True) * (pv - p * xp.sum(pv, axis=1, keepdims=True))",
      "        return pv - p * xp.sum(pv, axis=1, keepdims=True)",
      ('tests/test_mutants.py::test_cross_entropy_with_soft_targets_matches_finite_differences',), "the cross-entropy Hessian assumes targets that sum to one"),
    # ------------------------------------------------------------- trackers
    M("median-is-mean", "trackers", "plugins/pccore_trackers/metrics.py",
      "    median = np.median(np.asarray(distances, dtype=np.float64), axis=1)",
      "    median = np.mean(np.asarray(distances, dtype=np.float64), axis=1)",
      ('tests/test_mutants.py::test_steps_to_threshold_uses_the_batch_median',), "steps to threshold from the batch mean, not the median"),
    M("distance-worst-layer-mean", "trackers", "plugins/pccore_trackers/distance.py",
      "            worst = np.max([np.median(dist[k], axis=1) for k in self.layers], axis=0)",
      "            worst = np.max([np.mean(dist[k], axis=1) for k in self.layers], axis=0)",
      ('tests/test_mutants.py::test_steps_to_threshold_uses_the_batch_median',), "the distance tracker's all-layer test uses the mean"),
    M("distance-relative-ignored", "trackers", "plugins/pccore_trackers/distance.py",
      "        self._pending.append(rows / self._scale if self.relative else rows)",
      "        self._pending.append(rows)",
      ('tests/test_trackers.py::test_distance_to_optimum_goes_to_zero',), "relative=True reports absolute distances"),
    # ----------------------------------------------------------------- data
    M("one-hot-offset", "data", "plugins/pccore_data/vision.py",
      "        standardise(_images(x_tr), PIXEL_MAX, mean, std, flatten), one_hot(y_tr - offset, num_classes, name),",
      "        standardise(_images(x_tr), PIXEL_MAX, mean, std, flatten), one_hot(y_tr, num_classes, name),",
      ('tests/test_data.py::test_emnist_letters_from_idx_files',), "EMNIST letters 1..26 not shifted to classes 0..25"),
    M("standardise-mean", "data", "plugins/pccore_data/_common.py",
      "    x -= (mean / std).astype(np.float32)", "    x -= mean.astype(np.float32)",
      ('tests/test_data.py::test_digits_standardised_with_training_stats', 'tests/test_data.py::test_fashion_mnist_from_idx_files'), "standardisation subtracts the unscaled mean"),
    M("batches-keep-last", "data", "pccore/data.py",
      "    stop = n - n % batch_size if drop_last else n", "    stop = n",
      ('tests/test_data.py::test_digits_batches_on_backend',), "drop_last ignored: a short last batch"),
    M("idx-size-unchecked", "data", "plugins/pccore_data/vision.py",
      "    if size != want:", "    if size < want:",
      ('tests/test_bad_input.py::test_truncated_mnist_file_is_named',), "an IDX file longer than its header says passes (truncation check weakened)"),
    # -------------------------------------------------------------- backends
    M("torch-asarray-alias", "backends", "backends/pccore_torch/__init__.py",
      "            return obj.detach().to(device=device, dtype=_DTYPES[dtype], copy=True)",
      "            return obj.detach().to(device=device, dtype=_DTYPES[dtype])",
      ('tests/test_mutants.py::test_asarray_copies',), "rt.asarray of a torch tensor aliases the caller's tensor", "torch"),
    M("numpy-asarray-alias", "backends", "backends/pccore_numpy/__init__.py",
      "        return np.array(obj, dtype=dtype, copy=True)  # never alias the caller's data",
      "        return np.asarray(obj, dtype=dtype)",
      ('tests/test_mutants.py::test_asarray_copies',), "rt.asarray aliases the caller's NumPy array"),
    M("jax-asarray-alias", "backends", "backends/pccore_jax/__init__.py",
      "        return jax.device_put(jnp.array(obj, dtype=dtype, copy=True), _all_devices()[device])",
      "        return jax.device_put(jnp.asarray(obj, dtype=dtype), _all_devices()[device])",
      ('tests/test_mutants.py::test_asarray_copies',), "rt.asarray may share an aligned NumPy buffer on CPU", "jax"),
    M("jax-loop-off-by-one", "backends", "backends/pccore_jax/loop.py",
      "        return (i < n) & ~until(c, args)", "        return (i <= n) & ~until(c, args)",
      ('tests/test_inference.py::test_tol_stops_early_and_flags_convergence',), "the jax while loop runs one step past n", "jax"),
    M("jax-unroll-everything", "backends", "backends/pccore_jax/loop.py",
      "UNROLL_MAX = 16", "UNROLL_MAX = 10**6",
      ('tests/test_bad_input.py::test_jax_training_step_loops_above_the_unroll_threshold',),
      "huge iters unrolled into the trace (a hang)", "jax", timeout=60),
    M("torch-to-numpy-alias", "backends", "backends/pccore_torch/__init__.py",
      "        return array.detach().to(\"cpu\", copy=True).numpy()", "        return array.detach().cpu().numpy()",
      ('tests/test_backends.py::test_to_numpy_copies',), "to_numpy shares the tensor's memory", "torch"),
]

# Survivors judged equivalent (no test can tell them apart from the original): id -> why.
EQUIVALENT: dict[str, str] = {}


# ------------------------------------------------------------------ copy and run
def tracked_files(root: Path) -> list[str]:
    """Files git knows or would add (tracked + untracked, not ignored), that exist now."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=root, check=True, capture_output=True).stdout.decode()
    return sorted(p for p in set(out.split("\0")) if p and (root / p).is_file())


def make_copy(root: Path, dest: Path) -> Path:
    """Copy the repository's files to ``dest`` (the working tree is never modified)."""
    for rel in tracked_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return dest


def environment(copy: Path, backends: str) -> dict:
    env = dict(os.environ)
    paths = [str(copy), str(copy / "backends"), str(copy / "plugins")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale bytecode between a mutant and its revert
    if backends:
        env["PCCORE_BACKENDS"] = backends
    else:
        env.pop("PCCORE_BACKENDS", None)
    return env


VERIFY = """
import importlib, sys
names = ["pccore", "pccore_numpy", "pccore_torch", "pccore_jax", "pccore_trackers", "pccore_data", "pccore_plots"]
for name in names:
    try:
        module = importlib.import_module(name)
    except Exception as err:  # an optional framework missing
        print(name, "SKIP", type(err).__name__)
        continue
    print(name, module.__file__)
import pccore
backend = pccore.runtime("numpy").pm.get_plugin("backend")
print("entry-point backend", sys.modules[type(backend).__module__].__file__)
"""


def verify_imports(copy: Path) -> list[str]:
    """Assert that pccore, its backends and plugins (also through the entry points) are
    imported from the copy, not from the working tree; returns the report lines."""
    run = subprocess.run([sys.executable, "-c", VERIFY], cwd=copy, env=environment(copy, "numpy"),
                         capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"import check failed:\n{run.stdout}\n{run.stderr}")
    lines = run.stdout.strip().splitlines()
    for line in lines:
        path = line.rsplit(" ", 1)[-1]
        if "SKIP" not in line and not Path(path).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"not imported from the copy: {line}")
    return lines


def pytest_command(tests: tuple, stop_first: bool = True) -> list[str]:
    return [sys.executable, "-m", "pytest", *(["-x"] if stop_first else ["-rf"]), "-q", "-p", "no:cacheprovider",
            "-o", "addopts=", *tests]


def run_tests(copy: Path, tests: tuple, backends: str, timeout: float,
              stop_first: bool = True) -> tuple[int | None, str]:
    """(pytest's exit status or None on timeout, its output)."""
    try:
        run = subprocess.run(pytest_command(tests, stop_first), cwd=copy, env=environment(copy, backends),
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return run.returncode, (run.stdout + run.stderr).strip()


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.splitlines()[-lines:])


def baselines(copy: Path, mutants: list, timeout: float) -> dict:
    """Run every test selection once on the unmutated copy (one pytest run per backend
    setting); returns {backends: set of node ids that failed or None when the run failed
    as a whole}, so a kill always means the mutant made passing tests fail."""
    failed: dict = {}
    for backends in sorted({m.backends for m in mutants}):
        tests = tuple(dict.fromkeys(t for m in mutants if m.backends == backends for t in m.tests))
        code, out = run_tests(copy, tests, backends, timeout * 4, stop_first=False)
        bad = {line.split()[1] for line in out.splitlines() if line.startswith("FAILED ")}
        failed[backends] = bad if code in (0, 1) else None
        state = "passes" if code == 0 else f"exit {code}: {sorted(bad) if bad else _tail(out)}"
        print(f"baseline ({backends or 'all backends'}, {len(tests)} selections): {state}", flush=True)
    return failed


def _broken(mutant: Mutant, failed: dict) -> str | None:
    """Why the mutant's tests cannot judge it (they fail without it), or None."""
    bad = failed.get(mutant.backends)
    if bad is None:
        return "the baseline run failed"
    hit = sorted(n for n in bad for t in mutant.tests if n == t or n.startswith(t + "["))
    return f"tests fail without the mutant: {hit}" if hit else None


def check_snippet(root: Path, mutant: Mutant) -> str | None:
    """None when ``mutant.original`` occurs exactly once in its file, else what is wrong."""
    path = root / mutant.file
    if not path.is_file():
        return f"{mutant.file} does not exist"
    count = path.read_text().count(mutant.original)
    return None if count == 1 else f"snippet found {count} times in {mutant.file}"


def run_mutant(copy: Path, mutant: Mutant, timeout: float, failed: dict) -> dict:
    """Apply ``mutant`` in the copy, run its tests (stopping at the first failure), revert."""
    problem = check_snippet(copy, mutant) or _broken(mutant, failed)
    if problem:
        return {"status": "error", "detail": problem, "seconds": 0.0}
    path = copy / mutant.file
    original = path.read_text()
    start = time.monotonic()
    try:
        path.write_text(original.replace(mutant.original, mutant.replacement, 1))
        code, out = run_tests(copy, mutant.tests, mutant.backends, mutant.timeout or timeout)
    finally:
        path.write_text(original)
    seconds = time.monotonic() - start
    if code == 0:
        return {"status": "survived", "detail": _tail(out), "seconds": seconds}
    if code in (4, 5):  # usage error / nothing collected: the selection is wrong, not the code
        return {"status": "error", "detail": f"pytest exit {code}: {_tail(out)}", "seconds": seconds}
    return {"status": "killed", "detail": "timeout" if code is None else _tail(out), "seconds": seconds}


# ---------------------------------------------------------------------- report
def write_report(results: list, imports: list[str], total_seconds: float, path: Path) -> float:
    """Write the markdown report; returns the score (killed / (killed + survived))."""
    killed = sum(r["status"] == "killed" for _, r in results)
    survived = [m for m, r in results if r["status"] == "survived"]
    errors = [(m, r) for m, r in results if r["status"] == "error"]
    counted = killed + len(survived)
    score = killed / counted if counted else 0.0
    lines = [
        "# Mutation testing results", "",
        "Written by `scripts/mutation_test.py` (see its docstring and `docs/testing.md`).", "",
        f"**Score: {killed}/{counted} killed = {100 * score:.1f}%** "
        f"({len(survived)} survived, {len(errors)} not run; {total_seconds / 60:.1f} min).", "",
        "| mutant | area | file | bug | tests | result | s |", "|---|---|---|---|---|---|---|",
    ]
    for mutant, result in results:
        tests = " ".join(mutant.tests).replace("|", "/")
        backends = mutant.backends or "all"
        lines.append(f"| `{mutant.id}` | {mutant.area} | `{mutant.file}` | {mutant.why} | `{tests}` ({backends}) "
                     f"| {result['status']}{' (timeout)' if result['detail'] == 'timeout' else ''} "
                     f"| {result['seconds']:.0f} |")
    lines += ["", "## Survivors", ""]
    if not survived:
        lines.append("None.")
    for mutant in survived:
        lines.append(f"- `{mutant.id}`: {EQUIVALENT.get(mutant.id, 'NOT EXPLAINED: needs a test')}")
    if errors:
        lines += ["", "## Not run", ""]
        lines += [f"- `{m.id}`: {r['status']}: {r['detail']}" for m, r in errors]
    lines += ["", "## Imports checked in the copy", "", "```", *imports, "```", ""]
    path.write_text("\n".join(lines))
    return score


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="check every snippet occurs once, run nothing")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run (default 300)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"report file (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    ids = [m.id for m in MUTANTS]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate mutant ids")
    chosen = MUTANTS if not args.only else [m for m in MUTANTS if m.id in args.only]
    unknown = set(args.only or ()) - set(ids)
    if unknown:
        raise SystemExit(f"unknown mutant ids: {sorted(unknown)}")
    if args.list:
        for m in chosen:
            print(f"{m.id:32} {m.area:13} {m.file}: {m.why}")
        return 0
    if args.check:
        problems = [(m.id, check_snippet(ROOT, m)) for m in chosen]
        for mid, problem in problems:
            if problem:
                print(f"{mid}: {problem}")
        print(f"{sum(p is None for _, p in problems)}/{len(problems)} snippets found exactly once")
        return int(any(problems[i][1] for i in range(len(problems))))
    start, results = time.monotonic(), []
    with tempfile.TemporaryDirectory(prefix="pccore-mutants-") as tmp:
        copy = make_copy(ROOT, Path(tmp) / "repo")
        imports = verify_imports(copy)
        print(f"copy in {copy}; imports checked ({len(imports)} modules)", flush=True)
        failed = baselines(copy, chosen, args.timeout)
        for i, mutant in enumerate(chosen, 1):
            result = run_mutant(copy, mutant, args.timeout, failed)
            results.append((mutant, result))
            print(f"[{i}/{len(chosen)}] {mutant.id}: {result['status']} ({result['seconds']:.0f} s)"
                  + ("" if result["status"] == "killed" else f"  {result['detail']}"), flush=True)
    score = write_report(results, imports, time.monotonic() - start, args.out)
    print(f"score {100 * score:.1f}%; report in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
