#!/usr/bin/env bash
# Runs one epoch of the example network (batch 10) with PyTorch and with
# pkg/deep, alternately, each on 1 thread and on all cores, ROUNDS times:
# the speed table of docs/DEEP.md. Run from the repository's root:
#   bash pkg/deep/testdata/compare.sh [ROUNDS] [ACTIVATION]
# ACTIVATION relu (the default) runs the example network (η 0.03, λ 0.1,
# dropout 0.5); sigmoid or tanh run conv 20×5×5 f, pool 2, conv 40×5×5 f,
# pool 2, dense 100 f, softmax 10 with η 0.1, λ 0, no dropout (Nielsen's
# first chapter 6 networks), PyTorch with network3's initialisation.
set -euo pipefail
rounds=${1:-1}
act=${2:-relu}
if [ "$act" = relu ]; then
  torchargs=()
  deepargs=()
else
  torchargs=(--activation "$act" --eta 0.1 --lmbda 0 --dropout 0 --init network3)
  deepargs=(-net "conv20:5:$act,pool2,conv40:5:$act,pool2,dense100:$act,softmax10" -eta 0.1 -lambda 0)
fi
go build -o /tmp/deeprun ./pkg/deep/internal/deeprun
cores=$(nproc)
for r in $(seq "$rounds"); do
  for t in 1 "$cores"; do
    echo "round $r: torch $act, $t thread(s): $(/usr/bin/python3 pkg/deep/testdata/torch_epoch.py --threads "$t" "${torchargs[@]}" | tail -1)"
    echo "round $r: deep $act, GOMAXPROCS $t: $(GOMAXPROCS=$t /tmp/deeprun "${deepargs[@]}" | grep "^epoch")"
  done
done
