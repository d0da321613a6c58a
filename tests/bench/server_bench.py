#!/usr/bin/env python3
"""ember-server under load: the aggregate generated tokens/s of 8 concurrent clients against 1.

Starts ember-server on a free loopback port (a synthetic model of stories110m's shape unless --model
is given), warms it up, then runs the same requests (max_tokens generated, EOS ignored, greedy)
from 1 client and from --clients concurrent clients, and prints both rates and their ratio. The
issue asks for at least 4x with 8 clients on 2 threads. Standard library only.

  python3 tests/bench/server_bench.py [--build build/release] [--clients 8] [--threads 2]
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def post(base, body):
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def run_clients(base, clients, requests, tokens):
    """Generated tokens per second of `clients` threads doing `requests` requests each."""
    counts = [0] * clients
    errors = []

    def client(i):
        try:
            for k in range(requests):
                r = post(base, {"prompt": "Once upon a time", "max_tokens": tokens,
                                "temperature": 0, "ignore_eos": True, "seed": i * 100 + k})
                counts[i] += r["usage"]["completion_tokens"]
        except Exception as e:  # report, do not hang the others
            errors.append(repr(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    if errors:
        sys.exit("server_bench: requests failed: " + "; ".join(errors[:3]))
    return sum(counts) / seconds, sum(counts), seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build/release", help="build tree with the binaries")
    ap.add_argument("--model", help="an .ember file (default: synthetic stories110m, converted)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3, help="requests per client")
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per request")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    a = ap.parse_args()
    server_bin = os.path.join(a.build, "platforms/posix/apps/ember-server")
    convert_bin = os.path.join(a.build, "converter/ember-convert")
    tmp = tempfile.mkdtemp(prefix="ember-server-bench-")
    model = a.model
    if not model:
        model = os.path.join(tmp, "stories110m.ember")
        subprocess.run([convert_bin, "--synthetic", "stories110m", "--seed", "1", "-o", model],
                       check=True, stdout=subprocess.DEVNULL)
    log_path = os.path.join(tmp, "server.log")
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [server_bin, "-m", model, "--port", "0", "--parallel", str(a.clients), "--queue",
             str(a.clients), "-t", str(a.threads), "-c", str(a.ctx)], stdout=log, stderr=log)
    try:
        base = None
        for _ in range(600):
            time.sleep(0.1)
            m = re.search(r"listening on (http://[0-9.]+:\d+)", open(log_path).read())
            if m and base is None:
                base = m.group(1)
            if base:
                try:
                    urllib.request.urlopen(base + "/health", timeout=5)
                    break
                except Exception:
                    pass
            if server.poll() is not None:
                sys.exit("server_bench: ember-server exited:\n" + open(log_path).read())
        run_clients(base, 1, 1, 16)  # warm-up
        one, n1, s1 = run_clients(base, 1, a.requests, a.tokens)
        many, n8, s8 = run_clients(base, a.clients, a.requests, a.tokens)
        ratio = many / one if one > 0 else 0.0
        print(json.dumps({"model": model, "threads": a.threads, "tokens_per_request": a.tokens,
                          "one_client_tokens_per_s": round(one, 2), "one_client_tokens": n1,
                          "one_client_s": round(s1, 3), "clients": a.clients,
                          "clients_tokens_per_s": round(many, 2), "clients_tokens": n8,
                          "clients_s": round(s8, 3), "ratio": round(ratio, 2)}))
        print("server_bench: 1 client %.1f tokens/s, %d clients %.1f tokens/s: %.2fx" %
              (one, a.clients, many, ratio), file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
