#!/usr/bin/env bash
# playbooks/verify.yml end to end against every sandbox scenario: healthy ones pass in every exposure
# mode and through each way of reaching a ClusterIP target; broken ones fail with a report naming the
# cause; no port-forward survives a run, passing or failing; junit.xml validates.
set -eux

source ../setup_sandbox/sandbox.sh
collection_root
reports=$(mktemp -d)
trap 'rm -rf "${reports}"' EXIT

# verify SCENARIO VERDICT [CHECK=WORDS ...] -- [ansible-playbook args]
verify() {
  local scenario=$1 verdict=$2 status=0
  shift 2
  local expectations=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do expectations+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local report="${reports}/${scenario}-$RANDOM"
  # Every process the play starts inherits this marker, so what survives it can be found.
  marker="verify-playbook-$$-${RANDOM}"
  (
    sandbox_up "${scenario}"
    local extra=()
    if [ "${scenario}" = openshift-route ]; then
      # The route's host has no DNS record here (as on a fresh cluster): resolve it to the router's address,
      # as a user would: the host from the Route, the address from the router's load balancer.
      local host router
      host=$(kubectl get route -n "${SANDBOX_NAMESPACE}" -o jsonpath='{.items[0].spec.host}')
      router=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["external"]["Router/default"])' "${SANDBOX_STATE}")
      extra=(-e "{\"llmd_resolve\": {\"${host}\": \"${router}\"}, \"llmd_ca_path\": \"${SANDBOX_DIR}/ca.crt\"}")
    fi
    LLMD_VERIFY_RUN_MARKER="${marker}" ansible-playbook "${COLLECTION_ROOT}/playbooks/verify.yml" \
      -i "${COLLECTION_ROOT}/playbooks/inventory/localhost.yml" \
      -e "llmd_kubeconfig=${KUBECONFIG} llmd_namespace=${SANDBOX_NAMESPACE} llmd_report_dir=${report}" \
      -e "llmd_models_wait_timeout=20" "${extra[@]}" "$@"
  ) || status=$?
  if [ "${verdict}" = passed ] && [ "${status}" -ne 0 ]; then
    echo "verify.yml failed on ${scenario}"; exit 1
  fi
  if [ "${verdict}" = failed ] && [ "${status}" -eq 0 ]; then
    echo "verify.yml passed on the broken ${scenario}"; exit 1
  fi
  # verify.yml writes each host under llmd_report_dir/<inventory_hostname>/; this inventory has one, localhost.
  python check_report.py "${report}/localhost" "${verdict}" "${expectations[@]}"
  no_forward_left
}

# Nothing the play started may survive it (the sandbox is down by now too).
no_forward_left() {
  local left
  left=$(grep -l -s -a "LLMD_VERIFY_RUN_MARKER=${marker}" /proc/[0-9]*/environ || true)
  if [ -n "${left}" ]; then
    for environ in ${left}; do tr '\0' ' ' < "${environ%/environ}/cmdline"; echo; done
    echo "a process started by the play survived it"; exit 1
  fi
}

# Healthy stacks, each exposure mode.
verify sim passed mode=gateway completions=finish_reason stream=TTFT -- -e llmd_guide=simulated-accelerators
verify inference-scheduling passed mode=port_forward logs-decode=noise -- -e llmd_guide=inference-scheduling
verify inference-scheduling passed endpoint="via api_proxy" -- -e llmd_guide=inference-scheduling -e llmd_transport=api_proxy
verify inference-scheduling passed mode=port_forward -- -e llmd_port_forward_backend=kubectl
verify optimized-baseline passed mode=standalone -- -e llmd_guide=optimized-baseline
verify optimized-baseline passed endpoint="via api_proxy" -- -e llmd_guide=optimized-baseline -e llmd_transport=api_proxy
verify pd-disaggregation passed prefill=moved logs-prefill=kept -- -e llmd_guide=pd-disaggregation
verify nodeport passed mode=service
verify ingress passed mode=ingress
verify ingress-hostname passed mode=ingress
verify openshift-route passed mode=route stream=TTFT
verify two-gateways passed
verify warming-up passed models=attempt

# Broken stacks: the report names the cause.
verify no-healthy-upstream failed models="no decode pod is Ready" -- -e llmd_models_wait_timeout=3
verify crashloop failed logs-decode-previous="CUDA out of memory" models=crash-looping
verify no-gateway failed endpoint=no
