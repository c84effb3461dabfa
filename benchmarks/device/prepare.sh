#!/usr/bin/env bash
# Run HERE, on the development machine, before a device call. The lent GPU machine reaches no internet
# and gets only the repository's working tree, so what it lacks travels in two ignored folders that the
# call names in `carry`:
#   .device/data  CIFAR-10 (the JPEG archive from ../shared/data; ../shared itself does not travel)
#   .whl          kornia and kornia_rs wheels for its Python 3.12 (its image has torch, numpy, pillow,
#                 safetensors, PyYAML, matplotlib, tqdm and tensorboard, not kornia)
set -euo pipefail
cd "$(dirname "$0")/../.."
data=${FILTERPRIOR_SHARED_DATA:-../shared/data}
mkdir -p .device/data .whl
[ -f .device/data/cifar10-jpeg.tar.gz ] || cp "$data/cifar10-jpeg.tar.gz" .device/data/
kornia=$(grep -E '^kornia==' requirements.txt)
kornia_rs=$(grep -E '^kornia_rs==' requirements.txt)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$kornia" "$kornia_rs"
ls -la .device/data .whl
echo "ready: carry [\".device\", \".whl\"] in the device call"
