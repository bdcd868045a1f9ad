"""pluggy hook specifications of pccore (project name "pccore").

Backend hooks are answered by the one backend registered in a Runtime (firstresult).
Observer hooks are broadcast to every registered plugin and never change results.
"""

from __future__ import annotations

import pluggy

PROJECT = "pccore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ----------------------------------------------------------------- backend hooks
@hookspec(firstresult=True)
def pccore_namespace():
    """Return the Array API namespace of the backend's arrays."""


@hookspec(firstresult=True)
def pccore_devices():
    """Return the device names available on this machine, e.g. ["cpu", "cuda:0"]."""


@hookspec(firstresult=True)
def pccore_default_device():
    """Return the name of the device used when none is requested."""


@hookspec(firstresult=True)
def pccore_dtype(name):
    """Return the framework dtype for ``name`` ("float32"/"float64"), enabling it if needed."""


@hookspec(firstresult=True)
def pccore_threads(n):
    """Limit the backend's CPU intra-op threads to ``n`` (BLAS/OpenMP pools, torch's pool,
    XLA's CPU pool where it has not started yet); called before any device is used.
    Return a short text saying what was set."""


@hookspec(firstresult=True)
def pccore_asarray(obj, device, dtype):
    """Return ``obj`` (host data or array) as a backend array on ``device`` with ``dtype``."""


@hookspec(firstresult=True)
def pccore_device_name(array):
    """Return the device name (as listed by ``pccore_devices``) an array lives on."""


@hookspec(firstresult=True)
def pccore_to_numpy(array):
    """Return a host NumPy copy of a backend array."""


@hookspec(firstresult=True)
def pccore_make_optimizer(name, hyper):
    """Return an optimizer with ``init(params) -> state`` and
    ``update(params, grads, state) -> (params, state)`` for params as a tuple of arrays."""


@hookspec(firstresult=True)
def pccore_run_loop(body, carry, n, args, until):
    """Run ``carry = body(carry, args)`` up to ``n`` times; stop early once
    ``until(carry, args)`` (a 0-d bool array) is true. Return ``(carry, iterations)``.
    ``body`` and ``until`` are hashable values so compiled loops can be cached."""


@hookspec(firstresult=True)
def pccore_compile_step(fn):
    """Return the training step ``fn(carry, batch) -> (carry, out)`` compiled as one
    backend function. ``fn`` is hashable (its structure static); ``carry`` (parameters,
    optimizer state) may be updated in place or donated: callers use only the returned
    carry. JAX: ``jax.jit`` with the carry donated; torch: under ``no_grad``, captured as a
    CUDA graph on CUDA devices; NumPy: ``fn`` itself."""


@hookspec(firstresult=True)
def pccore_compile(fn):
    """Return ``fn`` compiled for this backend (``jax.jit`` on JAX; ``fn`` itself on eager
    backends). ``fn`` is a module-level function of arrays and tuples of arrays."""


@hookspec(firstresult=True)
def pccore_ops():
    """Return the backend's kernels for what the Array API lacks, as an object whose
    attributes are the functions below (a backend may leave any out: using a block that
    needs a missing one raises an error naming the op and the backend). Images are NCHW,
    conv weights OIHW; ``stride``, ``padding``, ``dilation``, ``kernel`` are (h, w) int
    pairs; padding is symmetric zero padding (max pooling pads with -inf).

    - ``conv2d(x, w, stride, padding, dilation, groups, bias=None) -> y`` (bias (O,) or None)
    - ``conv2d_input_grad(g, w, input_shape, stride, padding, dilation, groups) -> gx``
      (the transpose of conv2d in x; ``input_shape`` is x's full (N, C, H, W))
    - ``conv2d_weight_grad(x, g, weight_shape, stride, padding, dilation, groups) -> gw``
    - ``max_pool2d(x, kernel, stride, padding) -> (y, res)`` (``res``: whatever the two
      functions below need, e.g. argmax indices; it never leaves one sweep)
    - ``max_pool2d_vjp(res, g) -> gx`` and ``max_pool2d_jvp(res, t) -> ty``
    - ``avg_pool2d(x, kernel, stride, padding) -> y`` (padding counts in the mean)
    - ``avg_pool2d_vjp(g, input_shape, kernel, stride, padding) -> gx``
    - optional fused activations: ``activation(name, a, settings) -> y`` and
      ``activation_vjp(name, a, y, g, settings) -> phi'(a) * g`` (names as in
      ``pccore.nn.ACTIVATIONS``; settings: slope or bounds), for eager frameworks where one
      kernel beats the Array API formula's several;
    - ``vjp(fn, params, x) -> (y, pullback)`` with ``pullback(g) -> (gparams, gx)`` and
      ``jvp(fn, params, x, t) -> (y, ty)``: the framework's autodiff of
      ``y = fn(params, x)`` (params a tuple of arrays), for ``Foreign`` blocks only; and
      ``vjp_jvp(fn, params, x, g, t)``: d/de [J(x + e t)^T g] (exact Hessian products).
    """


@hookspec(firstresult=True)
def pccore_synchronize():
    """Block until queued device work is done (used by benchmarks only)."""


# ---------------------------------------------------------------- observer hooks
@hookspec
def pccore_inference_start(info):
    """Inference is about to start; ``info`` is an ``InferenceStart`` payload."""


@hookspec
def pccore_inference_step(step):
    """One inference step was taken; ``step`` is an ``InferenceStep`` payload."""


@hookspec
def pccore_inference_end(result):
    """Inference finished; ``result`` is the ``InferenceResult``."""


@hookspec
def pccore_train_step(info):
    """One weight update was made; ``info`` is a ``TrainStep`` payload."""


@hookspec
def pccore_epoch_end(info):
    """One training epoch ended; ``info`` is an ``EpochEnd`` payload."""


# ------------------------------------------------------------ data parallel (backend)
@hookspec(firstresult=True)
def pccore_data_parallel(device, devices, distributed):
    """Return the backend's data-parallel layout (see ``pccore.train.parallel.Layout``) for
    ``devices`` (an int, "all", or a list of device names) or ``distributed=True`` (one
    process per device, started by a launcher such as torchrun), or None when the backend
    has none. ``device`` is the requested device name or None. The layout says how a
    global batch is split into shards, sums them across shards, and who writes files."""
