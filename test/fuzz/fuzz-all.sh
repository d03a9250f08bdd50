#!/usr/bin/env bash
# npm run fuzz: every fuzz target for FUZZ_SECONDS each (default 600), from FUZZ_SEED (default
# random, printed). FUZZ_TARGETS picks some: FUZZ_TARGETS="login network" npm run fuzz.
# A finding stops the run with exit 1; its input is under test/fuzz/findings/
# (replay: node --import tsx --import ./test/fuzz/engine/instrument.ts test/fuzz/run.ts <target> --replay <file>).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-600}
seed=${FUZZ_SEED:-$((RANDOM * 32768 + RANDOM))}
echo "fuzz: ${seconds} s per target, seed ${seed}"
for target in ${FUZZ_TARGETS:-framer text login scsi network}; do
  if [ "$target" = network ]; then
    node --import tsx test/fuzz/network/run.ts --seed "$seed" --seconds "$seconds"
  else
    node --import tsx --import ./test/fuzz/engine/instrument.ts test/fuzz/run.ts "$target" --seed "$seed" --seconds "$seconds"
  fi
done
