#!/usr/bin/env bash
# Runs the Figure 2 sweep (tuning/figure2.flags) as a distributed KerasTuner search on one machine: a chief that
# serves the oracle and one worker per CPU core, each pinned to its core (small models use one core better than two
# processes sharing both). Rerunning resumes: the search state lives in results/figure2/search/ and is committed as
# trials complete. Logs: runs/figure2/{chief,worker0,worker1}.log. Then `make figure2` draws the frontier.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-2}
mkdir -p runs/figure2
export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=${PORT:-8471}
KERASTUNER_TUNER_ID=chief $PY -m tuning.search --flagfile=tuning/figure2.flags "$@" > runs/figure2/chief.log 2>&1 &
chief=$!
sleep 10
pids=()
for ((i = 0; i < WORKERS; i++)); do
  KERASTUNER_TUNER_ID=tuner$i taskset -c $((i % $(nproc))) $PY -m tuning.search --flagfile=tuning/figure2.flags "$@" \
    > runs/figure2/worker$i.log 2>&1 &
  pids+=($!)
done
wait "${pids[@]}" || true
wait $chief
