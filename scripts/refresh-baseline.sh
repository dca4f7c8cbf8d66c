#!/usr/bin/env bash
# Refreshes the committed baseline of a scenario: RUNS clean runs of it, kept as
# reports/baselines/<name>/run-<i>.json. `compare` takes their median as the baseline and their
# spread as measured run-to-run noise. Run it on the machine class that runs the gate (README,
# "Baselines"). Only passing, trustworthy runs are kept; a run that failed a gate (exit 1) or that
# the harness could not measure (exit 4) is retried, up to three attempts per run kept.
#
# Usage: scripts/refresh-baseline.sh [SCENARIO.toml] [RUNS]     defaults: scenarios/smoke.toml 3
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/smoke.toml}
runs=${2:-3}
name=$(basename "$scenario" .toml)
out=reports/baselines/$name
bin=target/release/openframe-harness

cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kept=0
attempt=0
while [ "$kept" -lt "$runs" ]; do
  attempt=$((attempt + 1))
  if [ "$attempt" -gt $((runs * 3)) ]; then
    echo "error: only $kept clean runs of $runs in $((attempt - 1)) attempts; is the machine busy?" >&2
    exit 1
  fi
  set +e
  "$bin" run "$scenario" --out "$work/attempt-$attempt" --quiet > "$work/attempt-$attempt.log" 2>&1
  code=$?
  set -e
  verdict=$(grep -m1 -E '^[^ ]+: ' "$work/attempt-$attempt.log" || true)
  case $code in
    0)
      kept=$((kept + 1))
      cp "$work/attempt-$attempt/report.json" "$work/run-$kept.json"
      echo "attempt $attempt: $verdict; kept as run-$kept.json"
      ;;
    1 | 4) echo "attempt $attempt: $verdict (exit $code); not kept, trying again" ;;
    *)
      cat "$work/attempt-$attempt.log" >&2
      echo "error: the run could not be carried out (exit $code)" >&2
      exit 1
      ;;
  esac
done

rm -rf "$out"
mkdir -p "$out"
cp "$work"/run-*.json "$out"/
echo "baseline written: $out ($runs runs)"
echo "check it:  $bin compare $out $out/run-1.json"
echo "then:      git add $out && git commit -m \"Refresh the $name baseline\""
