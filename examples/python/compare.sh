#!/usr/bin/env bash
# Connection lifecycles per second from Python (bulk calls, and one unary call per step) beside
# the Rust `Run` stream (`tcpsim load`), against one release server on a virtual clock, in one
# run. The README's figure comes from this script:
#
#     cargo build --release && pip install ./clients/python && examples/python/compare.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-200000}
port=${TCPSIM_COMPARE_PORT:-50661}
bin=./target/release/tcpsim
"$bin" serve --listen 127.0.0.1:$port --clock virtual --metrics-listen off --log warn &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do "$bin" health --addr 127.0.0.1:$port >/dev/null 2>&1 && break; sleep 0.1; done

scenario=$(mktemp --suffix .yaml)
cat > "$scenario" <<YAML
name: rust-stream-lifecycles
phases:
  - open: {count: $n}
  - close: {side: client}
  - close: {side: server}
  - hold: {ms: 61000}
YAML
echo "== Rust: tcpsim load, one Run stream, $n lifecycles (open, close client, close server)"
start=$(date +%s.%N)
"$bin" load --target 127.0.0.1:$port "$scenario" >/dev/null
end=$(date +%s.%N)
python3 -c "print(f'$n lifecycles in {$end - $start:.2f} s = {$n / ($end - $start):,.0f}/s (whole run, with the report)')"
rm -f "$scenario"

echo "== Python: bulk calls, batches of 1000"
python3 examples/python/churn.py --target 127.0.0.1:$port --lifecycles "$n"
echo "== Python: one unary call per step"
python3 examples/python/churn.py --target 127.0.0.1:$port --lifecycles $((n / 100)) --batch 1
