#!/usr/bin/env bash
# Sets up and builds stitch, then composes a real torchvision resnet18 with a
# new head, prints what it built, runs it and checks it against PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stitch=build/stitch
echo
echo "== exporting resnet18 with /usr/bin/python3"
/usr/bin/python3 demo/export_models.py demo/out
echo
echo "== stitch check demo/spec.yaml"
$stitch check demo/spec.yaml
echo
echo "== stitch compose demo/spec.yaml -o demo/out/combined.pt"
$stitch compose demo/spec.yaml -o demo/out/combined.pt
echo
echo "== stitch run demo/out/combined.pt --input image=demo/out/images.pt"
$stitch run demo/out/combined.pt --input image=demo/out/images.pt -o demo/out/outputs.pt
echo
echo "== the artifact in Python, against the same model written by hand"
/usr/bin/python3 demo/check_in_python.py demo/out/combined.pt demo/out/resnet18.pt \
  demo/out/images.pt demo/out/outputs.pt
