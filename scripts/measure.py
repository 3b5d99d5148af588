#!/usr/bin/env python3
"""Measures what the README states about the component: its size, and how long a cold
`host-test sign` takes (a new process each time; first with an empty compile cache, then with
a warm one).

Usage: scripts/measure.py [RUNS]   (after `cargo build --release -p host-test`)
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "target/release/host-test"
COMPONENT = ROOT / "target/component/wasm32-wasip2/component/wif_push.wasm"
REQUEST = json.dumps({
    "method": "POST",
    "url": "https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
    "region": "us-east-1",
    "service": "sts",
    "time": "2015-08-30T12:36:00Z",
    "access_key_id": "AKIDEXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
})


def sign_ms(cache_dir):
    env = dict(os.environ, WIF_PUSH_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    subprocess.run([HOST, "sign"], input=REQUEST.encode(), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    if not HOST.exists():
        sys.exit(f"{HOST} not found: run cargo build --release -p host-test first")
    cold, warm = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(sign_ms(cache))
            warm.append(sign_ms(cache))
    size = COMPONENT.stat().st_size
    print(f"component: {size} bytes ({size / 1024:.0f} KiB), {COMPONENT.relative_to(ROOT)}")
    print(f"host-test sign, compile cache empty: median {statistics.median(cold):.1f} ms over {runs} runs")
    print(f"host-test sign, compile cache warm:  median {statistics.median(warm):.1f} ms over {runs} runs")


if __name__ == "__main__":
    main()
