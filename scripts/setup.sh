#!/usr/bin/env bash
# Install everything xferlab needs on a fresh Debian machine with Python 3.11 (root, no venv).
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
APT_PKGS="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festlex-cmu sox libsox-fmt-base"

missing_apt() {
  for pkg in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

need=$(missing_apt)
if [ -n "$need" ]; then
  echo "[setup] installing Debian packages:" $need
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

stamp=.xferlab-cache/install.stamp
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && $PY -c "import xferlab, tensorflow, torch, mlflow, optuna" 2>/dev/null; then
  echo "[setup] Python packages up to date"
else
  echo "[setup] installing the xferlab package and its pinned dependencies (first time: a few minutes)"
  $PY -m pip install -q --disable-pip-version-check -e '.[dev]'
  mkdir -p .xferlab-cache && echo "$want" > "$stamp"
fi
echo "[setup] ready: $(command -v xferlab)"
