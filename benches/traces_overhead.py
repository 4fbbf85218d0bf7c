"""Request latency with traces on vs off (BENCHMARKS.md, "Traces on vs off").

Two gateways on the instant fake CLI (tests/fixtures/instant_claude.c; cold spawns, no pool,
no reuse, as the cold rows of benches/overhead.rs), 200 sequential non-streamed requests each
after 10 to warm up, interleaved in 4 rounds of 50; the traced one exports OTLP/HTTP to a sink
on 127.0.0.1 that answers 200. Usage: python3 benches/traces_overhead.py [path/to/claude-gateway]
(default target/release/claude-gateway). Needs `cc`.
"""
import http.server, json, os, subprocess, sys, tempfile, threading, time, urllib.request, statistics
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/claude-gateway")
WORK = tempfile.mkdtemp(prefix="traces-bench-")
CLI = os.path.join(WORK, "instant_claude")
subprocess.run(["cc", "-O2", "-o", CLI, os.path.join(ROOT, "tests/fixtures/instant_claude.c")], check=True)
received = [0]
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n); received[0] += n
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=sink.serve_forever, daemon=True).start()
COUNT=[0]
def start(extra):
    COUNT[0]+=1
    args = [BIN, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--claude-bin", CLI,
            "--pool-size", "0", "--discover-models", "false", "--reuse-processes", "false",
            "--session-store", os.path.join(WORK, "sessions-%d" % COUNT[0])] + extra
    env = dict(os.environ, RUST_LOG="warn"); env.pop("ANTHROPIC_API_KEY", None)
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline()
    http_addr = [w for w in line.split() if w.startswith("http=")][0][5:]
    return p, f"http://{http_addr}/v1/chat/completions"
off, url_off = start([])
on, url_on = start(["--otlp-endpoint", f"http://127.0.0.1:{sink.server_address[1]}", "--otlp-protocol", "http/protobuf"])
body = json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "Hello [[words:4]]"}]}).encode()
def once(url):
    t = time.perf_counter()
    r = urllib.request.urlopen(urllib.request.Request(url, body, {"content-type": "application/json"}), timeout=30)
    r.read(); assert r.status == 200
    return (time.perf_counter() - t) * 1000
for u in (url_off, url_on):
    for _ in range(10): once(u)  # warm up
lat = {"off": [], "on": []}
for rnd in range(4):
    for name, u in (("off", url_off), ("on", url_on)) if rnd % 2 == 0 else (("on", url_on), ("off", url_off)):
        lat[name] += [once(u) for _ in range(50)]
for p in (off, on): p.terminate(); p.wait(timeout=20)
q = lambda xs, f: sorted(xs)[int(f * (len(xs) - 1))]
for name in ("off", "on"):
    xs = lat[name]
    print(f"{name}: n={len(xs)} p50={statistics.median(xs):.2f} ms p99={q(xs,0.99):.2f} ms mean={statistics.mean(xs):.2f} ms")
print(f"ratio on/off: p50 {statistics.median(lat['on'])/statistics.median(lat['off']):.3f}, mean {statistics.mean(lat['on'])/statistics.mean(lat['off']):.3f}; sink got {received[0]} bytes")
