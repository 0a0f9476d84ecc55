#!/usr/bin/env bash
# gateway_endpoint_info on every sandbox scenario, compared with what the seed's own commands return there,
# then the failure messages (bad credentials, unreachable API server, bad input). Against a real cluster
# (LLMD_VERIFY_KUBECONFIG) the comparison runs once on it and the sandbox-only checks are skipped.
set -eux

source ../setup_sandbox/sandbox.sh

ALL_SCENARIOS="sim inference-scheduling optimized-baseline pd-disaggregation nodeport ingress ingress-hostname
  openshift-route warming-up no-healthy-upstream crashloop two-gateways no-gateway"
# Scenarios the sandbox has today (it is growing); against a real cluster, that cluster once.
if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
  scenarios=real
else
  available=" $(llmd-sandbox scenarios | awk '{print $1}' | tr '\n' ' ') "
  scenarios=$(for s in ${ALL_SCENARIOS}; do if [[ "${available}" == *" $s "* ]]; then echo "$s"; fi; done)
fi

scenario_expect() {  # the scenario's own `expect:` (what its author says a tool should find), as JSON
  python - "$1" <<'PY'
import json, os, sys
try:
    import llmd_sandbox, yaml
    path = os.path.join(os.path.dirname(llmd_sandbox.__file__), "scenarios", sys.argv[1] + ".yaml")
    print(json.dumps(yaml.safe_load(open(path)).get("expect") or {}))
except (ImportError, OSError):
    print("{}")
PY
}

# The interpreter ansible-test chose (it has the kubernetes client), else the python on PATH.
python_interpreter=${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}

for scenario in ${scenarios}; do
  (
    sandbox_up "${scenario}"
    ansible-playbook -i localhost, -c local seed_agreement.yml -e "kubeconfig=${KUBECONFIG} llmd_namespace=${SANDBOX_NAMESPACE}" \
      -e "ansible_python_interpreter=${python_interpreter}" \
      -e "scenario=${scenario}" -e "{\"expect\": $(scenario_expect "${scenario}")}" "$@"
  )
done

(
  sandbox_up sim
  sandbox_only "401/403 need the sandbox's tokens"
  ansible-playbook -i localhost, -c local failures.yml -e "kubeconfig=${KUBECONFIG} llmd_namespace=${SANDBOX_NAMESPACE}" \
      -e "ansible_python_interpreter=${python_interpreter}" \
    -e "state_file=${SANDBOX_STATE}" "$@"
)
