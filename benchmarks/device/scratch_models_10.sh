#!/usr/bin/env bash
# Run ON the lent GPU machine (device tool: run, carry [".device", ".whl"], timeout_s 600), after
# benchmarks/device/prepare.sh here. Issue 11's model sweep for the from-scratch row at 10 a class, on the
# validation pool only (tune_small_data.py: the test set is never evaluated): airnet, the control, rerun
# there because a GPU's kernels give other figures than this CPU's, against wrn-16-4 and wrn-16-8, each with
# the strong recipe (AutoAugment, flip TTA, 800 epochs: none-strong-airnet trains 1600 at 10 a class since
# session 16, so the airnet row run here is the control), splits 0-2, all nine runs
# side by side on the one GPU. Each run stops at the deadline; finished rows come back in
# $OUT/tuning-<candidate>.csv (append them to benchmarks/results/tuning.csv here), with machine.txt and log.txt.
#   EPOCHS, SPLITS, DEADLINE_S and EXTRA (more key=value overrides) change the defaults, for a dry run on a CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/device-out}
EPOCHS=${EPOCHS:-800}
SPLITS=${SPLITS:-0 1 2}
DEADLINE_S=${DEADLINE_S:-540}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONPATH="$PWD/src" FILTERPRIOR_DATA=${FILTERPRIOR_DATA:-$PWD/.device/data} PYTHONUNBUFFERED=1
if ! $PY -c "import kornia" 2>/dev/null; then   # the device's image has no kornia: the carried wheels
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi";
  $PY -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, 'cuda', torch.cuda.is_available())"; } > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
# Decode the archive once before nine processes want it at the same time.
$PY -c "from filterprior.data import load_data; load_data('cifar10', download=False)" >> "$OUT/log.txt" 2>&1 || { cat "$OUT/log.txt"; exit 1; }
recipe="tta=flip,data.policy=autoaugment,epochs=$EPOCHS${EXTRA:+,$EXTRA}"
for model in airnet wrn-16-4 wrn-16-8; do
    csv="$OUT/tuning-$model.csv"
    for split in $SPLITS; do
        timeout "$DEADLINE_S" $PY benchmarks/tune_small_data.py --threads 1 --runs runs/device-tuning \
            --tag scratch10-models-gpu --results "$csv" --split-seeds "$split" \
            --candidate "$model-autoaug-e$EPOCHS:model.name=$model,$recipe" >> "$OUT/log.txt" 2>&1 &
    done
done
wait
grep -hv '^date,' "$OUT"/tuning-*.csv || echo "no run finished"
