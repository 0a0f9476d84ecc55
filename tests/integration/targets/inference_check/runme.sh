#!/usr/bin/env bash
# inference_check against sandbox scenarios: completions, chat and streams on the sim LoadBalancer gateway, directly
# and through the API server proxy; an unknown model's 404; optimized-baseline's standalone EPP by proxy.
set -eux

source ../setup_sandbox/sandbox.sh

service_matching() {
  kubectl get svc -n "${SANDBOX_NAMESPACE}" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -E "$1" | head -n1
}

(
  sandbox_up sim
  address=$(kubectl get gateway -n "${SANDBOX_NAMESPACE}" -o jsonpath='{.items[0].status.addresses[0].value}')
  ansible-playbook -i localhost, -c local gateway.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "endpoint=http://${address} gateway_service=$(service_matching '.*-inference-gateway(-.*)?$')" "$@"
)
(
  sandbox_up optimized-baseline
  # The standalone EPP Service fronts HTTP itself: find its HTTP port by name, as the guides' Services name it.
  epp=$(service_matching '-epp$')
  port=$(kubectl get svc -n "${SANDBOX_NAMESPACE}" "${epp}" -o jsonpath='{.spec.ports[?(@.name=="http")].port}')
  ansible-playbook -i localhost, -c local standalone_epp.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "epp_service=${epp} epp_port=${port:-80}" "$@"
)
