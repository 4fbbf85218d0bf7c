#!/usr/bin/env bash
# Runs every benchmark in one go and prints the results as Markdown for BENCHMARKS.md (also
# saved to target/benchmarks.md): the machine, then each benchmark's section. The e2e and reuse
# benchmarks need the real CLI (.ci/install-tools); the others need only a C compiler (`cc`).
# Usage: benches/run.sh        (about 6 minutes after the build, on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
benches=(e2e reuse overhead memory no_buffering hotpaths cluster operator)

claude=${CLAUDE_REAL_BIN:-.tools/node_modules/.bin/claude}
if [ ! -x "$claude" ]; then
  echo "$claude missing: run .ci/install-tools for the e2e and reuse benchmarks; skipping them" >&2
  benches=("${benches[@]:2}")
fi
# Build once, then run the built executables: a source edit during the run cannot trigger a
# rebuild between two benchmarks.
exes=$(cargo bench --quiet --no-run --message-format=json $(printf -- '--bench %s ' "${benches[@]}") |
  grep -o '"executable":"[^"]*"' | cut -d'"' -f4)
mkdir -p target/tmp
for b in "${benches[@]}"; do rm -f "target/tmp/bench-$b.md"; done
{
  echo "## Machine"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
  echo "- RAM: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "- kernel: $(uname -sr)"
  echo "- $(rustc --version)"
  echo "- claude CLI: $("$claude" --version 2>/dev/null || echo 'not installed')"
  echo "- load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} > target/benchmarks.md

start=$(date +%s)
declare -A took
for b in "${benches[@]}"; do
  exe=$(grep -E "/$b-[0-9a-f]+\$" <<< "$exes")
  echo ">>> $exe --bench" >&2
  t0=$(date +%s)
  "$exe" --bench >&2
  took[$b]=$(( $(date +%s) - t0 ))
done
declare -A titles=(
  [e2e]="Time to first token on the real CLI (\`e2e\`)"
  [reuse]="Process reuse on the real CLI: bursts, sequential requests, agent loops, the floor (\`reuse\`)"
  [overhead]="Gateway overhead with an instant fake CLI (\`overhead\`)"
  [memory]="Memory (\`memory\`)"
  [no_buffering]="Streaming adds no buffering (\`no_buffering\`)"
  [hotpaths]="Hot paths, criterion (\`hotpaths\`)"
  [cluster]="Scale-out, one façade in front of 1 and 3 workers (\`cluster\`)"
  [operator]="The operator's view: ledger, budgets and traces on vs off (\`operator\`)"
)
for b in "${benches[@]}"; do
  {
    echo
    echo "## ${titles[$b]}"
    echo
    cat "target/tmp/bench-$b.md"
    echo
    echo "_Ran in ${took[$b]} s._"
  } >> target/benchmarks.md
done
echo >> target/benchmarks.md
echo "All benchmarks took $(( $(date +%s) - start )) s after the build." >> target/benchmarks.md
cat target/benchmarks.md
