#!/usr/bin/env bash
# pod_logs_info against sandbox scenarios: exact counts on known logs, the crashloop scenario's
# out-of-memory line in the previous container's log, and a follow window around a request.
set -eux

source ../setup_sandbox/sandbox.sh
# It applies its own pod and sends requests straight to pod IPs, which only the sandbox allows.
sandbox_only "applies a pod and reaches pod IPs"

run_playbook() {
  ansible-playbook -i localhost, "$1" \
    -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE} sandbox_state=${SANDBOX_STATE}" "${@:2}"
}

# Each scenario in a subshell: sandbox_up's EXIT trap then stops that sandbox when the subshell ends.
(
  sandbox_up inference-scheduling
  run_playbook known_logs.yml "$@"
  run_playbook follow.yml "$@"
  run_playbook bad_input.yml "$@"
)
(
  sandbox_up crashloop
  run_playbook crashloop.yml "$@"
)
