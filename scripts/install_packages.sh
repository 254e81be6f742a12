#!/usr/bin/env bash
# Installs the Debian packages stitch needs, plus any given as arguments,
# that are not installed yet (as root; quiet when there is nothing to do),
# and makes OpenBLAS the system's libblas.so.3.
#   bash scripts/install_packages.sh [EXTRA_PACKAGE...]
set -euo pipefail
packages=(
  build-essential cmake ccache git
  libtorch-dev libgloo-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libfmt-dev libssl-dev zlib1g-dev
  libgtest-dev libbenchmark-dev
  python3-torch python3-torchvision python3-torchaudio python3-sklearn python3-pytest
  python3-numpy graphviz
  # The tests' own: two "machines" in network namespaces (ip netns), and
  # groff to check the man page.
  iproute2 groff-base
  # LibTorch's Linear layers go through libblas.so.3; Debian's default is the
  # slow reference BLAS. OpenBLAS built for OpenMP (the runtime LibTorch uses)
  # takes over libblas.so.3 through the alternatives system when installed.
  libopenblas0-openmp
  "$@"
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Make sure libblas.so.3 is OpenBLAS (openmp), not the reference BLAS.
openblas=/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3
if [ -e "$openblas" ]; then
  update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" >/dev/null 2>&1 || true
fi
