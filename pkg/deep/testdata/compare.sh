#!/usr/bin/env bash
# Runs one epoch of the example network (batch 10) with PyTorch and with
# pkg/deep, alternately, each on 1 thread and on all cores, ROUNDS times:
# the speed table of docs/DEEP.md. Run from the repository's root:
#   bash pkg/deep/testdata/compare.sh [ROUNDS]
set -euo pipefail
rounds=${1:-1}
go build -o /tmp/deeprun ./pkg/deep/internal/deeprun
cores=$(nproc)
for r in $(seq "$rounds"); do
  for t in 1 "$cores"; do
    echo "round $r: torch, $t thread(s): $(/usr/bin/python3 pkg/deep/testdata/torch_epoch.py --threads "$t" | tail -1)"
    echo "round $r: deep, GOMAXPROCS $t: $(GOMAXPROCS=$t /tmp/deeprun | grep "^epoch")"
  done
done
