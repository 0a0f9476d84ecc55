#!/usr/bin/env bash
# playbooks/verify.yml over several clusters in one inventory, as a CI job runs it: three sandboxes (two healthy,
# one crash-looping) verified in parallel with -e llmd_report_dir: one report per cluster under <dir>/<host>/, one
# summary beside them written once (summary.md names the broken cluster and its cause, junit.xml holds one suite
# per cluster and validates), and a non-zero exit code. Then, without sandboxes: a cluster whose API server is
# down and a host that fails before its report still appear in the summary; llmd_report_dir from host vars and
# from the role's default is a base too; the flat layout writes one host's report into the directory itself and
# refuses a play of several.
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_only "starts three sandboxes at once"
collection_root
playbook="${COLLECTION_ROOT}/playbooks/verify.yml"

work=$(mktemp -d "${TMPDIR:-/tmp}/llmd-verify-clusters.XXXXXX")
sandboxes=()
sandboxes_down() {
  local dir
  for dir in "${sandboxes[@]}"; do
    llmd-sandbox down --dir "${dir}" >/dev/null 2>&1 || true
  done
  sandboxes=()
}
trap 'sandboxes_down; rm -rf "${work}"' EXIT

# Start the sandboxes one after the other (three control planes starting at once on a busy machine time out);
# each stops with this shell (its caller), in the EXIT trap, or after its lifetime.
declare -A namespace
for scenario in sim optimized-baseline crashloop; do
  sandboxes+=("${work}/sandbox-${scenario}")
  llmd-sandbox up --scenario "${scenario}" --dir "${work}/sandbox-${scenario}" --lifetime 900 >/dev/null
  namespace[${scenario}]=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["namespace"])' \
    "${work}/sandbox-${scenario}/state.json")
done

cat > "${work}/clusters.yml" <<YAML
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  hosts:
    sim:
      llmd_kubeconfig: ${work}/sandbox-sim/kubeconfig
      llmd_namespace: ${namespace[sim]}
      llmd_guide: simulated-accelerators
    baseline:
      llmd_kubeconfig: ${work}/sandbox-optimized-baseline/kubeconfig
      llmd_namespace: ${namespace[optimized-baseline]}
      llmd_guide: optimized-baseline
    crashloop:
      llmd_kubeconfig: ${work}/sandbox-crashloop/kubeconfig
      llmd_namespace: ${namespace[crashloop]}
      llmd_models_wait_timeout: 10
YAML

# run LOG ANSIBLE-PLAYBOOK-ARGS...: the play must fail (a cluster is broken); its output goes to LOG and stdout.
run_failing() {
  local log=$1 status=0
  shift
  ansible-playbook "${playbook}" "$@" > "${log}" 2>&1 || status=$?
  cat "${log}"
  [ "${status}" -ne 0 ] || { echo "verify.yml exited 0 although a cluster failed"; exit 1; }
}

# Three clusters, one broken: the others are verified all the same, and the summary is written once.
run_failing "${work}/clusters.log" -i "${work}/clusters.yml" -e "llmd_report_dir=${work}/reports"
python check_clusters.py "${work}/reports" sim=passed baseline=passed crashloop=failed:crash
[ "$(grep -c 'TASK \[llmd.verify.report : Sum up every cluster of the play\]' "${work}/clusters.log")" -eq 1 ]
grep -q 'llm-d verification: FAILED (1 of 3 cluster(s) failed: crashloop)' "${work}/clusters.log"

# A cluster whose API server is down (the sim sandbox's kubeconfig, pointing at a port where nothing listens),
# and a host that fails before its report (a guide that does not exist), with llmd_report_dir in host vars.
closed_port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -E "s#server: https://[^ ]+#server: https://127.0.0.1:${closed_port}#" "${work}/sandbox-sim/kubeconfig" > "${work}/down.kubeconfig"
grep -q "server: https://127.0.0.1:${closed_port}" "${work}/down.kubeconfig"
sandboxes_down
cat > "${work}/down.yml" <<YAML
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    llmd_kubeconfig: ${work}/down.kubeconfig
  hosts:
    api-down: {}
YAML
cat > "${work}/hostvars.yml" <<YAML
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    llmd_kubeconfig: ${work}/down.kubeconfig
  hosts:
    api-down:
      llmd_report_dir: ${work}/hostvars-reports
    bad-input:
      llmd_report_dir: ${work}/hostvars-reports
      llmd_guide: no-such-guide
YAML
run_failing "${work}/hostvars.log" -i "${work}/hostvars.yml"
python check_clusters.py "${work}/hostvars-reports" "api-down=failed:API server does not answer" \
  "bad-input=unreported:before its report was written"

# The role's default: reports/ under the directory ansible-playbook runs in, each host in a directory of its own.
mkdir "${work}/cwd"
(cd "${work}/cwd" && run_failing "${work}/default.log" -i "${work}/down.yml")
python check_clusters.py "${work}/cwd/reports" "api-down=failed:API server does not answer"

# The flat layout: one host's report straight into the directory, without a summary; refused for two hosts.
run_failing "${work}/flat-one.log" -i "${work}/down.yml" -e "llmd_report_dir=${work}/flat-one llmd_report_layout=flat"
python -c 'import json, sys; assert json.load(open(sys.argv[1]))["cluster"] == "api-down"' "${work}/flat-one/report.json"
[ ! -e "${work}/flat-one/summary.md" ] && [ ! -e "${work}/flat-one/api-down" ]
run_failing "${work}/flat-two.log" -i "${work}/hostvars.yml" -e "llmd_report_dir=${work}/flat-two llmd_report_layout=flat"
grep -q "layout=flat writes the report of api-down straight into ${work}/flat-two, but this run verifies 2 clusters (api-down, bad-input): their reports would overwrite each other" "${work}/flat-two.log"
[ ! -e "${work}/flat-two" ]
