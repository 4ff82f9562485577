#!/bin/sh
# Prepare .venv with the pinned requirements; install missing system packages through apt-get
# when we can (root or sudo on Debian/Ubuntu), else say clearly what to install.
# Usage: scripts/bootstrap.sh [debian packages the caller needs...]
set -eu
cd "$(dirname "$0")/.."

say() { printf '%s\n' "bootstrap: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

apt_updated=""
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ -z "$apt_updated" ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || return 1
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# 1. A Python of 3.11 or newer.
PYTHON=""
for candidate in ${PYTHON_BIN:-} python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON=$(command -v "$candidate"); break
    fi
done
if [ -z "$PYTHON" ]; then
    say "no Python 3.11+ found; installing python3 with apt-get"
    apt_install python3 python3-venv python3-pip || {
        say "could not install Python. Install Python 3.11 or newer (with venv), then run make again."
        exit 1
    }
    PYTHON=$(command -v python3)
fi

# 2. The virtual environment (Debian splits venv/ensurepip into python3-venv).
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        say "python venv is missing; installing python${version}-venv with apt-get"
        apt_install "python${version}-venv" || apt_install python3-venv || {
            say "could not create .venv. Install the venv module for $PYTHON (Debian: python3-venv)."
            exit 1
        }
        "$PYTHON" -m venv .venv
    fi
fi

# 3. Python packages, pinned.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt

# 4. System packages the caller asked for (e.g. chromium for browser tests).
missing=""
for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $package"
done
if [ -n "$missing" ]; then
    say "installing system packages:$missing"
    # shellcheck disable=SC2086
    apt_install $missing || {
        say "could not install:$missing. Install them with your system's package manager."
        exit 1
    }
fi
