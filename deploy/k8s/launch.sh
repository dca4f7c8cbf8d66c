#!/usr/bin/env bash
# Starts one distributed run on the current kubectl context: the broker and the server cluster,
# the scenario, then the shards and the merge with a start time LEAD seconds ahead (default 120:
# time enough for every shard pod to be scheduled and pull its image). Waits for the merge and
# prints its verdict. Usage: deploy/k8s/launch.sh [LEAD_SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lead="${1:-120}"
ns=openframe
run="run-$(date -u +%Y%m%dT%H%M%SZ)"
start_at=$(( $(date +%s) + lead ))

kubectl apply -f "$here/namespace.yaml"
# The JWT secret is yours once created: never overwrite it.
kubectl -n "$ns" get secret openframe-jwt >/dev/null 2>&1 || kubectl apply -f "$here/secret.yaml"
kubectl apply -f "$here/redis.yaml" -f "$here/server.yaml" -f "$here/reports.yaml" -f "$here/scenario.yaml"
kubectl -n "$ns" rollout status deployment/openframe-redis deployment/openframe-server --timeout=10m
kubectl -n "$ns" patch configmap openframe-run --type merge \
    -p "{\"data\":{\"START_AT\":\"$start_at\",\"RUN\":\"$run\"}}"
kubectl -n "$ns" delete job openframe-shards openframe-merge --ignore-not-found
kubectl apply -f "$here/shards-job.yaml" -f "$here/merge-job.yaml"
echo "run $run: shards start at $(date -u -d "@$start_at" +%H:%M:%SZ); reports in the openframe-reports volume under $run/"
kubectl -n "$ns" wait --for=condition=complete job/openframe-merge --timeout=4h || true
kubectl -n "$ns" logs job/openframe-merge
