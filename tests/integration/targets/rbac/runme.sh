#!/usr/bin/env bash
# Least privilege, proven on the sandbox's real kube-apiserver (RBAC authorizer): docs/rbac.yaml bound to a
# ServiceAccount, verify.yml run with a TokenRequest token in a kubeconfig of its own, passes in each exposure
# mode and transport; then each rule is left out in turn, in one scenario where it matters, and a named check
# fails with the verb and resource refused (stack_info's reads: a warning naming them) while report.json and
# junit.xml are still written. Then secrets: an API key, the token and -vvv, and neither shows anywhere.
# It is part of `make test` (about 10 minutes on a quiet 2-core machine, 25-30 under heavy load); alone:
#   make integration INTEGRATION_ARGS='rbac'
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_only "binds RBAC rules to a ServiceAccount with the sandbox's admin credentials"

collection_root
RBAC_YAML="${COLLECTION_ROOT}/docs/rbac.yaml"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
# Every rule of docs/rbac.yaml must be left out by one run below: the ones not yet are crossed off here.
python rbac.py rules "${RBAC_YAML}" > "${work}/untested"

# bind [RULE]: docs/rbac.yaml in the sandbox's namespace, RULE left out, bound to the ServiceAccount llmd-verify;
# waits until the authorizer answers accordingly; a fresh token (TokenRequest) in ${work}/sa.kubeconfig.
bind() {
  local drop=${1:-} args=()
  [ -n "${drop}" ] && args=("${drop}")
  python rbac.py manifests "${RBAC_YAML}" "${SANDBOX_NAMESPACE}" "${args[@]}" | kubectl apply -f - > /dev/null
  local sa="system:serviceaccount:${SANDBOX_NAMESPACE}:llmd-verify" rule verb_args answer want
  while read -r rule; do
    want=yes
    [ "${rule}" = "${drop}" ] && want=no
    while read -r -a verb_args; do
      for _ in $(seq 50); do
        answer=$(kubectl auth can-i "${verb_args[@]}" -n "${SANDBOX_NAMESPACE}" --as "${sa}" || true)
        [ "${answer}" = "${want}" ] && break
        sleep 0.2
      done
      [ "${answer}" = "${want}" ] || { echo "can-i ${verb_args[*]}: ${answer}, expected ${want}"; exit 1; }
    done < <(python rbac.py can-i "${rule}")
  done < <(python rbac.py rules "${RBAC_YAML}")
  (umask 077; kubectl create token llmd-verify -n "${SANDBOX_NAMESPACE}" --duration 1h > "${work}/sa.token")
  python rbac.py kubeconfig "${KUBECONFIG}" "${work}/sa.token" "${work}/sa.kubeconfig" "${SANDBOX_NAMESPACE}"
}

# run NAME [ansible-playbook args]: verify.yml with only the ServiceAccount's kubeconfig; the report in ${work}/NAME.
run() {
  local name=$1
  shift
  KUBECONFIG="${work}/sa.kubeconfig" timeout -k 5 600 ansible-playbook "${COLLECTION_ROOT}/playbooks/verify.yml" \
    -i "${COLLECTION_ROOT}/playbooks/inventory/localhost.yml" \
    -e "llmd_kubeconfig=${work}/sa.kubeconfig llmd_namespace=${SANDBOX_NAMESPACE} llmd_report_dir=${work}/${name}" \
    -e llmd_report_layout=flat -e llmd_models_wait_timeout=20 -e llmd_port_forward_lifetime=300 "$@" \
    > "${work}/${name}.log" 2>&1 || true
}

passes() {  # passes NAME [args]: with every rule, every check passes and no read is refused
  local name=$1
  shift
  bind
  run "${name}" "$@"
  python rbac.py passed "${work}/${name}" || { tail -n 40 "${work}/${name}.log"; exit 1; }
}

# refused RULE CHECK VERB RESOURCE [args]: without RULE, CHECK fails naming VERB RESOURCE; the report is written.
refused() {
  local rule=$1 check=$2 verb=$3 resource=$4
  shift 4
  bind "${rule}"
  run "without-${rule//[:\/,]/_}" "$@"
  python rbac.py refused "${work}/without-${rule//[:\/,]/_}" "${check}" "${verb}" "${resource}" \
    || { tail -n 40 "${work}/without-${rule//[:\/,]/_}.log"; exit 1; }
  sed -i "\\|^${rule}\$|d" "${work}/untested"
}

# warned RULE VERB RESOURCE [args]: without RULE (a read only the stack inventory makes), the checks pass and the
# report's problems name VERB RESOURCE as refused.
warned() {
  local rule=$1 verb=$2 resource=$3
  shift 3
  bind "${rule}"
  run "without-${rule//[:\/,]/_}" "$@"
  python rbac.py warned "${work}/without-${rule//[:\/,]/_}" "${verb}" "${resource}" \
    || { tail -n 40 "${work}/without-${rule//[:\/,]/_}.log"; exit 1; }
  sed -i "\\|^${rule}\$|d" "${work}/untested"
}

models_only=(-e '{"llmd_inference_checks": ["models"], "llmd_logs_enabled": false}')

# Mode gateway (auto), direct.
(
  sandbox_up sim
  guide=(-e llmd_guide=simulated-accelerators)
  passes sim "${guide[@]}"
  refused llmd-verify:gateways.gateway.networking.k8s.io:list endpoint list gateways.gateway.networking.k8s.io \
    "${guide[@]}" "${models_only[@]}"
  for rule in httproutes.gateway.networking.k8s.io inferencepools.inference.networking.k8s.io \
      inferencepools.inference.networking.x-k8s.io deployments.apps; do
    warned "llmd-verify:${rule}:list" list "${rule}" "${guide[@]}" "${models_only[@]}"
  done
  warned llmd-verify-cluster:gatewayclasses.gateway.networking.k8s.io:list list gatewayclasses.gateway.networking.k8s.io \
    "${guide[@]}" "${models_only[@]}"
)

# Mode port_forward, both backends; the logs; then the secrets.
(
  sandbox_up inference-scheduling
  guide=(-e llmd_guide=inference-scheduling)
  passes port-forward-python "${guide[@]}"
  passes port-forward-kubectl "${guide[@]}" -e llmd_port_forward_backend=kubectl
  # python: the WebSocket GET is authorized as get; kubectl (1.33 here) falls back to SPDY's POST, create.
  refused llmd-verify-port-forward:pods/portforward:get,create endpoint get pods/portforward "${guide[@]}" "${models_only[@]}"
  refused llmd-verify-port-forward:pods/portforward:get,create endpoint create pods/portforward "${guide[@]}" \
    "${models_only[@]}" -e llmd_port_forward_backend=kubectl
  refused llmd-verify:pods:get,list endpoint list pods "${guide[@]}" "${models_only[@]}"
  refused llmd-verify:services:get,list endpoint list services "${guide[@]}" "${models_only[@]}"
  refused llmd-verify:pods/log:get logs-decode get pods/log "${guide[@]}" -e '{"llmd_inference_checks": ["models"]}'

  # Secrets: an API key, the ServiceAccount's token, -vvv. Neither, nor an Authorization header value, is in any
  # task result or output line, report, JUnit file or port-forward state file (kept in a runtime dir of ours).
  # The key goes in through a file of extra vars, so that it is on no command line (ps) either.
  bind
  { set +x; } 2>/dev/null  # the key and the token must not reach this script's own trace either
  api_key="llmd-test-key-$(python -c 'import secrets; print(secrets.token_hex(16))')"
  (umask 077
   printf '%s\n%s\n' "${api_key}" "$(cat "${work}/sa.token")" > "${work}/secrets"
   printf '{"api_key": "%s", "llmd_api_key": "%s"}\n' "${api_key}" "${api_key}" > "${work}/api_key.json")
  unset api_key
  set -x
  runtime="${work}/runtime"
  mkdir -m 700 "${runtime}"
  XDG_RUNTIME_DIR="${runtime}" KUBECONFIG="${work}/sa.kubeconfig" timeout -k 5 300 ansible-playbook -vvv ../setup_secrets/secrets.yml \
    -i "${COLLECTION_ROOT}/playbooks/inventory/localhost.yml" \
    -e "kubeconfig=${work}/sa.kubeconfig namespace=${SANDBOX_NAMESPACE} secrets_file=${work}/secrets" \
    -e "state_dir=${runtime}/llmd_verify/port_forward" -e "@${work}/api_key.json" \
    > "${work}/secrets.log" 2>&1 || { tail -n 60 "${work}/secrets.log"; exit 1; }
  XDG_RUNTIME_DIR="${runtime}" run secrets-verify -vvv "${guide[@]}" -e "@${work}/api_key.json"
  python rbac.py passed "${work}/secrets-verify" || { tail -n 40 "${work}/secrets-verify.log"; exit 1; }
  python ../setup_secrets/secret_scan.py scan "${work}/secrets" "${work}/secrets.log" "${work}/secrets-verify.log" "${work}/secrets-verify" \
    "${runtime}"
  # The forwards are stopped: their state files are gone with them.
  [ -z "$(ls -A "${runtime}/llmd_verify/port_forward")" ] || { ls -la "${runtime}/llmd_verify/port_forward"; exit 1; }
)

# Transport api_proxy (mode standalone): GET and POST through services/proxy.
(
  sandbox_up optimized-baseline
  guide=(-e llmd_guide=optimized-baseline -e llmd_transport=api_proxy)
  passes api-proxy "${guide[@]}"
  refused llmd-verify-api-proxy:services/proxy:get models get services/proxy "${guide[@]}" "${models_only[@]}"
  refused llmd-verify-api-proxy:services/proxy:create completions create services/proxy "${guide[@]}" \
    -e '{"llmd_inference_checks": ["completions"], "llmd_logs_enabled": false}'
)

# P/D: the prefill pods' counters through pods/proxy.
(
  sandbox_up pd-disaggregation
  guide=(-e llmd_guide=pd-disaggregation)
  passes pd "${guide[@]}"
  # The counters are read before the checks too; that read failing fails the prefill check with its message.
  refused llmd-verify:pods/proxy:get "prefill|Read the prefill pods' request counters before the checks" get pods/proxy \
    "${guide[@]}" -e llmd_logs_enabled=false
)

# Mode service with a NodePort: a node's address.
(
  sandbox_up nodeport
  passes nodeport -e llmd_endpoint_mode=service
  refused llmd-verify-cluster:nodes:list endpoint list nodes -e llmd_endpoint_mode=service "${models_only[@]}"
)

# Mode ingress.
(
  sandbox_up ingress
  passes ingress -e llmd_endpoint_mode=ingress
  refused llmd-verify:ingresses.networking.k8s.io:list endpoint list ingresses.networking.k8s.io \
    -e llmd_endpoint_mode=ingress "${models_only[@]}"
)

# Mode route: the route's host has no DNS record here; resolve it to the router's address, as verify_playbook does.
(
  sandbox_up openshift-route
  host=$(kubectl get route -n "${SANDBOX_NAMESPACE}" -o jsonpath='{.items[0].spec.host}')
  router=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["external"]["Router/default"])' "${SANDBOX_STATE}")
  route=(-e llmd_endpoint_mode=route -e "{\"llmd_resolve\": {\"${host}\": \"${router}\"}, \"llmd_ca_path\": \"${SANDBOX_DIR}/ca.crt\"}")
  passes route "${route[@]}"
  refused llmd-verify:routes.route.openshift.io:list endpoint list routes.route.openshift.io "${route[@]}" "${models_only[@]}"
)

# Every rule of docs/rbac.yaml was left out once.
[ ! -s "${work}/untested" ] || { echo "rules of docs/rbac.yaml no run left out:"; cat "${work}/untested"; exit 1; }
