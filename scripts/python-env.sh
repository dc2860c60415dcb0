# Sourced by scripts/run and scripts/test (from the checkout's root): sets PY, the absolute
# path of the Python that muxscope installs into.
#
# The base interpreter is the first of python3, python3.13, python3.12, python3.11 that is
# 3.11 or newer. PY is that interpreter itself, unless it is a distribution's "externally
# managed" one (PEP 668: Debian's /usr/bin/python3 refuses `pip install`) and no virtualenv
# is active: then PY is a virtualenv in the checkout, `.venv`, made on first use (and made
# again when it cannot run pip, e.g. half made, or left behind by a Python upgrade). Only
# where the venv module cannot bootstrap pip on an apt system is python3-venv installed first.

_base_python() {
    local name path
    for name in python3 python3.13 python3.12 python3.11; do
        path=$(command -v "$name") || continue
        if "$path" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            echo "$path"
            return 0
        fi
    done
    echo "muxscope needs Python 3.11 or newer (python3: $(python3 -V 2>&1 | head -n 1))" >&2
    return 1
}

_externally_managed() {
    "$BASE_PY" - <<'PYEOF'
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
    echo "$BASE_PY is externally managed (PEP 668): installing into ./.venv" >&2
    rm -rf .venv
    if ! "$BASE_PY" -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
        apt_install "python$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    fi
    "$BASE_PY" -m venv .venv
}

BASE_PY=$(_base_python)
PY=$BASE_PY
if _externally_managed; then
    .venv/bin/python -m pip --version >/dev/null 2>&1 || _make_venv
    PY="$PWD/.venv/bin/python"
fi
