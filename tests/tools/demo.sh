#!/usr/bin/env bash
# make demo: start the sandbox's simulated-accelerators scenario (every component real: the control plane,
# llm-d-inference-sim, the EPP and Envoy), verify it with playbooks/verify.yml,
# print the summary and where the report is, and stop the sandbox (also when the play fails).
set -euo pipefail
cd "$(dirname "$0")/../.."
scenario=${LLMD_DEMO_SCENARIO:-simulated-accelerators}
sandbox_dir=$(mktemp -d "${TMPDIR:-/tmp}/llmd-demo.XXXXXX")
report_dir=${LLMD_DEMO_REPORT_DIR:-$PWD/reports/demo}
trap 'llmd-sandbox down --dir "${sandbox_dir}" >/dev/null 2>&1 || true; rm -rf "${sandbox_dir}"' EXIT

echo "== starting the sandbox's ${scenario} scenario"
llmd-sandbox up --scenario "${scenario}" --dir "${sandbox_dir}"
namespace=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["namespace"])' "${sandbox_dir}/state.json")
export KUBECACHEDIR="${sandbox_dir}/kube-cache"

echo "== ansible-playbook playbooks/verify.yml"
status=0
ansible-playbook playbooks/verify.yml \
  -e "llmd_kubeconfig=${sandbox_dir}/kubeconfig" \
  -e "llmd_namespace=${namespace}" \
  -e "llmd_guide=${scenario}" \
  -e "llmd_report_dir=${report_dir}" || status=$?

echo
echo "== report: ${report_dir}/localhost/report.md (also report.json, junit.xml; the summary of every cluster: ${report_dir}/summary.md)"
cat "${report_dir}/localhost/report.md" 2>/dev/null || true
exit "${status}"
