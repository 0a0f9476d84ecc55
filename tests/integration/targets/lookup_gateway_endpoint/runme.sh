#!/usr/bin/env bash
# The gateway_endpoint lookup returns what gateway_endpoint_info returns, for every mode, with the
# kubeconfig given as an option or through K8S_AUTH_KUBECONFIG (kubernetes.core's variable); its failures
# are clear errors. (gateway_endpoint_info's target compares both on every scenario; this one goes deep on two.)
set -eux

source ../setup_sandbox/sandbox.sh
python_interpreter=${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}

for scenario in sim optimized-baseline; do
  (
    sandbox_up "${scenario}"
    K8S_AUTH_KUBECONFIG="${KUBECONFIG}" ansible-playbook -i localhost, -c local lookup.yml \
      -e "llmd_namespace=${SANDBOX_NAMESPACE} ansible_python_interpreter=${python_interpreter}" "$@"
  )
done
