#!/usr/bin/env bash
# Runs the Figure 2 sweep as distributed KerasTuner searches on one machine, one phase per flag file: the main grid
# (tuning/figure2.flags), then its extension to stronger bottlenecks (tuning/figure2_extension.flags). Each phase is a
# chief that serves the oracle and one worker per CPU core, each pinned to its core (small models use one core better
# than two processes sharing both). Rerunning resumes: each search's state lives in results/figure2/<project>/ and is
# committed as trials complete; a finished phase ends at once. Logs: runs/figure2/<phase>.{chief,worker0,...}.log.
# Then `make figure2` draws the frontier.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-2}
mkdir -p runs/figure2
export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=${PORT:-8471}
for flagfile in tuning/figure2.flags tuning/figure2_extension.flags; do
  phase=$(basename "$flagfile" .flags)
  KERASTUNER_TUNER_ID=chief $PY -m tuning.search --flagfile="$flagfile" "$@" > "runs/figure2/$phase.chief.log" 2>&1 &
  chief=$!
  sleep 10
  pids=()
  for ((i = 0; i < WORKERS; i++)); do
    KERASTUNER_TUNER_ID=tuner$i taskset -c $((i % $(nproc))) $PY -m tuning.search --flagfile="$flagfile" "$@" \
      > "runs/figure2/$phase.worker$i.log" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  wait $chief
done
