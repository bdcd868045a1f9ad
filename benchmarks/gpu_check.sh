#!/usr/bin/env bash
# One short GPU check for a lent device machine (its image has python3 with torch, jax,
# optax and equinox, and no network): installs pccore without dependencies, runs the
# GPU-relevant tests on torch (PCCORE_TORCH_DEVICE=cuda:0) and jax (GPU by default), the
# training-step benchmark on the GPU, and one MNIST CNN epoch per backend and method.
#
# Prepare here (both folders are ignored by git and travel with `carry`):
#   python -m pip download --no-deps --only-binary=:all: -d .whl array-api-compat==1.16.0
#   mkdir -p .gpudata/MNIST && cp -r ../shared/data/MNIST/raw .gpudata/MNIST/
# then run `bash benchmarks/gpu_check.sh` there with carry [".whl", ".gpudata"].
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps .whl/*.whl && \
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
nvidia-smi -L
python3 -c "import pccore, torch, jax; print(pccore.available_backends(), torch.__version__, jax.__version__, jax.devices())"

# JAX takes 75% of the GPU's memory at start by default; torch tests share the process
export PCCORE_TORCH_DEVICE=cuda:0 PCCORE_BACKENDS=torch,jax XLA_PYTHON_CLIENT_PREALLOCATE=false
echo "== tests (torch on cuda:0, jax on its GPU)"
timeout "${TEST_SECONDS:-200}" python3 -m pytest -q -p no:cacheprovider --tb=line \
  tests/test_kernels.py tests/test_models.py tests/test_train_step.py tests/test_inference.py \
  tests/test_convert.py 2>&1 | tee "$OUT/tests.log" | grep -E "Error|assert|passed|failed" | head -n 40
unset PCCORE_TORCH_DEVICE PCCORE_BACKENDS

echo "== training-step benchmark on the GPU"
timeout "${BENCH_SECONDS:-150}" python3 -m benchmarks --suite train --device cuda --backends torch,jax --quick \
  --out "$OUT" 2>&1 | tail -n 45

if [ -d .gpudata/MNIST/raw ]; then
  echo "== MNIST CNN, one epoch, batch 64, cross-entropy"
  for backend in "torch cuda" "jax gpu"; do
    set -- $backend
    for method in "bp" "eo --iters 10 --inference-lr 0.1"; do
      start=$(date +%s.%N)
      timeout 120 python3 -m pccore train --model cnn --dataset mnist --data-dir .gpudata --backend "$1" \
        --device "$2" --loss ce --method $method --epochs 1 --quiet --out "$OUT/cnn" 2>&1 | head -n 1
      echo "   $1 $method: $(python3 -c "import time,sys; print(round(time.time()-float(sys.argv[1]),1))" "$start") s"
    done
  done
fi
