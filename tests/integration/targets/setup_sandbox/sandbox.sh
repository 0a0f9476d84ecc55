#!/usr/bin/env bash
# Sourced by integration targets' runme.sh: start a sandbox scenario (or use a real cluster) and
# clean up on exit.
#
#   source ../setup_sandbox/sandbox.sh
#   sandbox_up inference-scheduling        # exports KUBECONFIG, SANDBOX_DIR, SANDBOX_NAMESPACE, SANDBOX_STATE
#   ansible-playbook -i ../../inventory playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}"
#
# Against a real cluster: export LLMD_VERIFY_KUBECONFIG (and LLMD_VERIFY_NAMESPACE); sandbox_up then
# uses it, and targets that need sandbox-only powers call sandbox_only to skip themselves.

# Targets run their playbooks with `-i localhost,`: give them the interpreter ansible-test chose (it has
# the kubernetes client), else the python on PATH, instead of ansible-test's "set it in the inventory".
ANSIBLE_PYTHON_INTERPRETER="${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}"
export ANSIBLE_PYTHON_INTERPRETER

sandbox_up() {
  local scenario=$1
  shift
  if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
    export KUBECONFIG="${LLMD_VERIFY_KUBECONFIG}"
    export SANDBOX_NAMESPACE="${LLMD_VERIFY_NAMESPACE:-llm-d}"
    export SANDBOX_DIR="" SANDBOX_STATE=""
    return 0
  fi
  SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/llmd-sandbox-${scenario}.XXXXXX")
  export SANDBOX_DIR
  trap 'sandbox_down' EXIT
  llmd-sandbox up --scenario "${scenario}" --dir "${SANDBOX_DIR}" "$@" >/dev/null
  export KUBECONFIG="${SANDBOX_DIR}/kubeconfig"
  export SANDBOX_STATE="${SANDBOX_DIR}/state.json"
  SANDBOX_NAMESPACE=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["namespace"])' "${SANDBOX_STATE}")
  export SANDBOX_NAMESPACE
  export KUBECACHEDIR="${SANDBOX_DIR}/kube-cache"
}

sandbox_down() {
  if [ -n "${SANDBOX_DIR:-}" ] && [ -d "${SANDBOX_DIR}" ]; then
    llmd-sandbox down --dir "${SANDBOX_DIR}" >/dev/null 2>&1 || true
    rm -rf "${SANDBOX_DIR}"
  fi
}

# Skip the calling target against a real cluster (it needs to restart pods or inject faults).
sandbox_only() {
  if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
    echo "skipped: needs the sandbox ($*)"
    exit 0
  fi
}
