#!/usr/bin/env bash
# stack_info: no error on the healthy scenarios, the explaining problem and hint on the broken ones, and each
# problem of the objects that no scenario has (applied with kubectl into a running sim sandbox); then what the
# read-only and rights-less tokens see. Against a real cluster (LLMD_VERIFY_KUBECONFIG) only the healthy
# check runs, once, on it.
set -eux

source ../setup_sandbox/sandbox.sh

python_interpreter=${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}

scenario_expect() {  # the scenario's own `expect:`, as JSON
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

play() {  # play PLAYBOOK [ARGS...]: against the current sandbox
  local playbook=$1
  shift
  ansible-playbook -i localhost, -c local "${playbook}" -e "kubeconfig=${KUBECONFIG} llmd_namespace=${SANDBOX_NAMESPACE}" \
    -e "ansible_python_interpreter=${python_interpreter}" "$@"
}

if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
  sandbox_up real
  play healthy.yml -e scenario=real -e '{"expect": {}}'
  exit 0
fi

for scenario in sim optimized-baseline inference-scheduling pd-disaggregation; do
  (
    sandbox_up "${scenario}"
    play healthy.yml -e "scenario=${scenario}" -e "{\"expect\": $(scenario_expect "${scenario}")}"
  )
done

for scenario in crashloop no-healthy-upstream; do
  (
    sandbox_up "${scenario}"
    play broken.yml -e "scenario=${scenario}"
  )
done

(
  sandbox_up sim
  kubectl apply -n "${SANDBOX_NAMESPACE}" -f files/broken-objects.yaml
  play applied.yml -e "state_file=${SANDBOX_STATE}"
)
