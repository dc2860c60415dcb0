# Sourced by scripts/run and scripts/test: sets PY to the Python that muxscope installs into.
#
# That is `python3` itself, unless it is a distribution's "externally managed" interpreter
# (PEP 668: Debian's /usr/bin/python3 refuses `pip install`) and no virtualenv is active:
# then it is a virtualenv in the checkout, `.venv`, made on first use (with Debian's
# python3-venv installed first when the venv module cannot bootstrap pip).

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

PY=python3
if _externally_managed; then
    if [ ! -x .venv/bin/python ]; then
        echo "python3 is externally managed (PEP 668): installing into ./.venv" >&2
        rm -rf .venv
        python3 -m venv .venv 2>/dev/null || { rm -rf .venv; apt_install python3-venv; python3 -m venv .venv; }
    fi
    PY=.venv/bin/python
fi
