#!/usr/bin/env bash
# Installs what stitch needs from Debian's archive (as root), then configures
# and builds it into build/. Safe to run again: it installs only what is
# missing and rebuilds only what changed (ccache + precompiled headers).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ccache git
  libtorch-dev libgloo-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libfmt-dev libssl-dev
  libgtest-dev libbenchmark-dev
  python3-torch python3-torchvision python3-torchaudio python3-sklearn python3-pytest
  python3-numpy graphviz
  # LibTorch's Linear layers go through libblas.so.3; Debian's default is the
  # slow reference BLAS. OpenBLAS built for OpenMP (the runtime LibTorch uses)
  # takes over libblas.so.3 through the alternatives system when installed.
  libopenblas0-openmp
)
bash scripts/install_packages.sh "${packages[@]}"
# Make sure libblas.so.3 is OpenBLAS (openmp), not the reference BLAS.
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$openblas" ]; then
  update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" >/dev/null 2>&1 || true
fi

export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE=5G
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${STITCH_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
