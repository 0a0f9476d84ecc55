#!/usr/bin/env bash
# The models lookup against a healthy sandbox, directly and through the API server proxy.
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_up sim
address=$(kubectl get gateway -n "${SANDBOX_NAMESPACE}" -o jsonpath='{.items[0].status.addresses[0].value}')
service=$(kubectl get svc -n "${SANDBOX_NAMESPACE}" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' \
  | grep -E '.*-inference-gateway(-.*)?$' | head -n1)
ansible-playbook -i localhost, -c local playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
  -e "endpoint=http://${address} gateway_service=${service}" "$@"
