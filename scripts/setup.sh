#!/usr/bin/env bash
# Idempotent set-up: Debian packages (GNU Radio and radio tools), then the venv at .venv made
# from /usr/bin/python3 with system site packages (so `from gnuradio import gr` works), holding
# the pinned pip packages of requirements.txt and the testbed package itself (editable).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS="gnuradio uhd-host python3-uhd libiio-utils python3-libiio python3-matplotlib python3-yaml dataset-fashion-mnist"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv from /usr/bin/python3 with system site packages"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=.venv/.testbed-installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  extra=()
  # A local wheel folder is used when the machine has one.
  [ -d /opt/wheels ] && extra+=(--find-links /opt/wheels)
  .venv/bin/pip install -q --disable-pip-version-check "${extra[@]}" -r requirements.txt
  # foolbox only for the 20+20 genuine CIFAR test images inside its wheel; its own dependencies
  # (eagerpy, GitPython, requests) are not needed.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps foolbox==3.3.4
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python -c 'from gnuradio import gr; import torch, onnxruntime; print("GNU Radio", gr.version(), "| torch", torch.__version__, "| onnxruntime", onnxruntime.__version__)'))"
