# Sourced by scripts/run and scripts/test (from the checkout's root): sets PY, the absolute
# path of the Python that muxscope installs into.
#
# That is `python3` itself, unless it is a distribution's "externally managed" interpreter
# (PEP 668: Debian's /usr/bin/python3 refuses `pip install`) and no virtualenv is active:
# then it is a virtualenv in the checkout, `.venv`, made on first use (and made again when
# it cannot run pip, e.g. half made or left behind by an upgrade of python3). Only where the
# venv module cannot bootstrap pip on a Debian-like system is python3-venv installed first.

_externally_managed() {
    python3 - <<'PYEOF'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
PYEOF
}

_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    _as_root apt-get update -q
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

_make_venv() {
    echo "python3 is externally managed (PEP 668): installing into ./.venv" >&2
    rm -rf .venv
    if ! python3 -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        apt_install python3-venv
    fi
    python3 -m venv .venv
}

PY=$(command -v python3)
if _externally_managed; then
    .venv/bin/python -m pip --version >/dev/null 2>&1 || _make_venv
    PY="$PWD/.venv/bin/python"
fi
