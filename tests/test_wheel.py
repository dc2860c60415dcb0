"""A plain (non-editable) install ships the page: the wheel carries static/ and templates/."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_serves_the_page_without_the_source_tree(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=120)
    (wheel,) = tmp_path.glob("muxscope-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "app/static/js/main.js" in names and "app/templates/index.html" in names
    assert any(n.startswith("app/static/vendor/uPlot") for n in names)
    assert "app/benchkit/loadclient.c" in names  # muxscope bench's C load client
    assert "app/benchkit/cecho.c" in names  # and its C echo loop
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    where = subprocess.run([sys.executable, "-c", "import app, mux; print(app.__file__)"],
                           cwd=run_dir, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(site)), where.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--http-port", "0", "--echo-port", "0", "--no-udp"],
        cwd=run_dir, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stdout:
            if line.startswith("Dashboard:"):
                url = line.split()[1]
                break
        assert url, proc.stderr.read()
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "/static/js/main.js" in page.text
        assert httpx.get(url + "static/js/main.js", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
    assert str(ROOT) not in (proc.stderr.read() or "")
