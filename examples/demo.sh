#!/usr/bin/env bash
# A short tour of a running kplane: built-in kinds, a CRD with validation, server-side apply, a watch.
# Usage: bash examples/demo.sh DATA_DIR   (the --data-dir given to `kplane up`)
set -euo pipefail
DATA_DIR=${1:-.kplane}
export KUBECONFIG="$DATA_DIR/kubeconfig"
HERE=$(cd "$(dirname "$0")" && pwd)
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step kubectl version
step kubectl get namespaces
step kubectl create namespace demo
step kubectl -n demo create configmap settings --from-literal=color=blue
step kubectl apply -f "$HERE/widget-crd.yaml"
step kubectl wait --for condition=established crd/widgets.demo.kplane.io --timeout=10s
step kubectl -n demo apply -f "$HERE/widget.yaml"
step kubectl -n demo get widgets
echo; echo "# a Widget that breaks the CEL rule is rejected by the server:"
kubectl -n demo apply -f - <<'YAML' || true
apiVersion: demo.kplane.io/v1
kind: Widget
metadata: {name: too-big}
spec: {size: 50}
YAML
step kubectl -n demo apply --server-side -f "$HERE/deployment.yaml"
step kubectl -n demo rollout status deployment/web --timeout=60s
step kubectl -n demo get deployments,replicasets,pods -o wide
step kubectl explain widget.spec --api-version=demo.kplane.io/v1
step kubectl api-resources --api-group=demo.kplane.io
