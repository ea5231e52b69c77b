# Install Debian/Ubuntu packages when this machine allows it (root, or sudo without a password).
# Usage: install_system_packages PACKAGE...   — prints what to run by hand otherwise.
install_system_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "note: please install the system packages ${missing[*]} (or your distribution's equivalents)" >&2
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "note: run 'sudo apt-get install -y ${missing[*]}' once, then run this again" >&2
      return 0
    fi
  fi
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || echo "note: could not install ${missing[*]}" >&2
}
