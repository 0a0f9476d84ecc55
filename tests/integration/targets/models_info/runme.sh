#!/usr/bin/env bash
# models_info against sandbox scenarios: healthy (direct and through the API server proxy), the real EPP
# with no Ready model server (its 500 is waited through, then named), warming-up (waits, then passes) and
# no-healthy-upstream (fails with that cause after wait_timeout).
set -eux

source ../setup_sandbox/sandbox.sh

# The seed's ways to find the gateway, with kubectl: the Gateway's address and its Service by name.
gateway_vars() {
  local address service
  address=$(kubectl get gateway -n "${SANDBOX_NAMESPACE}" -o jsonpath='{.items[0].status.addresses[0].value}')
  service=$(kubectl get svc -n "${SANDBOX_NAMESPACE}" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' \
    | grep -E '.*-inference-gateway(-.*)?$' | head -n1)
  echo "endpoint=http://${address} gateway_service=${service}"
}

run_playbook() {
  ansible-playbook -i localhost, -c local "$1" \
    -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE} $(gateway_vars)" "${@:2}"
}

(
  sandbox_up sim
  run_playbook healthy.yml "$@"
)
(
  sandbox_only "scales the model servers"
  sandbox_up optimized-baseline
  SANDBOX_API_SERVER=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["api_server"])' "${SANDBOX_STATE}")
  SANDBOX_TOKEN=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["tokens"]["admin"])' "${SANDBOX_STATE}")
  export SANDBOX_API_SERVER SANDBOX_TOKEN SANDBOX_CA="${SANDBOX_DIR}/ca.crt"
  ansible-playbook -i localhost, -c local standalone_epp.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" "$@"
)
(
  sandbox_only "warming-up scenario"
  sandbox_up warming-up
  run_playbook warming_up.yml "$@"
)
(
  sandbox_only "no-healthy-upstream scenario"
  sandbox_up no-healthy-upstream
  run_playbook no_healthy_upstream.yml "$@"
)
