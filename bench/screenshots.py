"""Look at what a user sees: headless Chromium screenshots of the HTML report, the MLflow UI
(a comparison of two V2S runs) and optuna-dashboard, each server started on 127.0.0.1 only.

Run it in a folder where the quickstart ran (``mlflow.db``, ``optuna.db``, ``reports/``):

    python bench/screenshots.py [--dir .] [--out screenshots]

It first checks the report the way a browser would load it: every ``<img>`` and every
local link of ``reports/index.html`` must point at a file that exists (it exits 1 naming the
first broken one). Needs Debian's ``chromium`` (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import html.parser
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


class Links(html.parser.HTMLParser):
    """Every src= of an <img> and href= of an <a> in a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and values.get("src"):
            self.images.append(values["src"])
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])


def broken_targets(index: Path) -> tuple[int, int, list[str]]:
    """(images, local links, the ones whose file is missing) of an HTML page."""
    parser = Links()
    parser.feed(index.read_text())
    local = [u for u in parser.links if not urllib.parse.urlparse(u).scheme and not u.startswith("#")]
    missing = [u for u in parser.images + local
               if not (index.parent / urllib.parse.unquote(u.split("#")[0])).exists()]
    return len(parser.images), len(local), missing


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return name
    raise SystemExit("no chromium: apt-get install chromium")


def screenshot(url: str, out: Path, size: str = "1400,1000", wait_ms: int = 8000) -> Path:
    """A PNG of ``url`` after ``wait_ms`` of page time (JavaScript apps render first)."""
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={out}", url],
                   check=True, capture_output=True, timeout=120)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(cmd: list[str], port: int, cwd: Path, path: str = "/") -> subprocess.Popen:
    """Start a server on 127.0.0.1:``port`` and wait until it answers."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited with {proc.returncode}")
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"{' '.join(cmd[:3])} did not answer on port {port}")


def two_v2s_runs(store: Path) -> tuple[str, list[str]]:
    """(experiment id, two FINISHED V2S run ids) of the store, for the comparison view."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("v2s")
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=2)
    return experiment.experiment_id, [r.info.run_id for r in runs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("."), help="where the quickstart ran")
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args()
    work, out = args.dir.resolve(), args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    index = work / "reports" / "index.html"
    images, links, missing = broken_targets(index)
    print(f"report: {images} images and {links} local links in {index}; missing: {missing or 'none'}")
    if missing:
        return 1
    print(f"  {screenshot(index.as_uri(), out / 'report.png', '1400,2400', 3000)}")
    port = free_port()
    ui = serve([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                "--host", "127.0.0.1", "--port", str(port)], port, work)
    try:
        experiment, runs = two_v2s_runs(work / "mlflow.db")
        query = urllib.parse.urlencode({"runs": json.dumps(runs), "experiments": json.dumps([experiment])})
        print(f"  {screenshot(f'http://127.0.0.1:{port}/#/compare-runs?{query}', out / 'mlflow_compare.png')}")
        print(f"  {screenshot(f'http://127.0.0.1:{port}/#/experiments/{experiment}', out / 'mlflow_runs.png')}")
    finally:
        ui.terminate()
    port = free_port()
    dash = serve(["optuna-dashboard", f"sqlite:///{work / 'optuna.db'}", "--host", "127.0.0.1", "--port", str(port)],
                 port, work)
    try:
        print(f"  {screenshot(f'http://127.0.0.1:{port}/dashboard/studies/1', out / 'optuna_study.png')}")
    finally:
        dash.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
