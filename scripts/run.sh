#!/usr/bin/env bash
# Set up (once) and start ckpt_gui on its demo training folder. Extra arguments go to ckpt-gui
# (e.g. a checkpoint directory instead of --demo).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_system_packages.sh
# Qt's X11 platform plugin needs these on a fresh Debian/Ubuntu desktop.
install_system_packages libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
  libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-randr0
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -e .
if [ $# -eq 0 ]; then set -- --demo; fi
exec .venv/bin/python -m ckpt_gui "$@"
