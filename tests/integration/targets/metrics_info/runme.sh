#!/usr/bin/env bash
# metrics_info against the pd-disaggregation scenario: a request moves a prefill pod's
# vllm:request_success_total, read through the API server proxy as llm-d's guide does.
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_up pd-disaggregation

epp=$(kubectl get svc -n "${SANDBOX_NAMESPACE}" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -E -- '-epp$' | head -n1)
ansible-playbook -i localhost, -c local playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
  -e "epp_service=${epp}" "$@"
