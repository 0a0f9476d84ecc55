#!/usr/bin/env bash
# The collection as users get it: the README's install steps run as written (inside the checkout, whose
# ansible.cfg points the collections path at the checkout itself, and from another directory), then
# ansible-doc, run outside the checkout, must list every module, lookup and role of the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
checkout=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

# The install block of the README, without pip (the dev venv has the requirements) and ansible-doc (below).
steps=$(awk '/^## Install into a real Ansible setup/ {inside = 1} inside && /^```bash/ {block = 1; next}
             block && /^```/ {exit} block' README.md | grep -v -e '^pip ' -e '^ansible-doc ')
[ -n "${steps}" ] || { echo "README.md has no install block under '## Install into a real Ansible setup'"; exit 1; }

# As a user: their own HOME, no ANSIBLE_CONFIG from make (the checkout's ansible.cfg applies inside it).
as_user() {
  local home=$1 dir=$2
  shift 2
  mkdir -p "${home}"
  (cd "${dir}" && env -u ANSIBLE_CONFIG -u ANSIBLE_COLLECTIONS_PATH -u ANSIBLE_COLLECTIONS_PATHS HOME="${home}" "$@")
}
installed() {
  local manifest="$1/.ansible/collections/ansible_collections/llmd/verify/MANIFEST.json"
  [ -f "${manifest}" ] || { echo "$2: nothing installed at ${manifest}"; echo "${3:-}"; exit 1; }
  echo "$2: installed into ~/.ansible/collections"
}

out=$(as_user "${work}/home" "${checkout}" bash -euo pipefail -c "${steps}" 2>&1)
if grep -q "Nothing to do" <<<"${out}"; then echo "the README's install steps, run in the checkout, did nothing:"; echo "${out}"; exit 1; fi
installed "${work}/home" "README install steps in the checkout" "${out}"
tarball=$(ls "${checkout}"/dist/llmd-verify-*.tar.gz)
install_line=$(grep 'collection install' <<<"${steps}" | sed "s|dist/llmd-verify-\*\.tar\.gz|${tarball}|")
out=$(as_user "${work}/elsewhere" "${work}" bash -euo pipefail -c "${install_line}" 2>&1)
installed "${work}/elsewhere" "the README's install line from another directory" "${out}"

export ANSIBLE_COLLECTIONS_PATH="${work}/home/.ansible/collections" ANSIBLE_CONFIG="${work}/none.cfg"
touch "${ANSIBLE_CONFIG}"
for kind in module lookup; do
  dir=$([ "${kind}" = module ] && echo modules || echo lookup)
  want=$(find "plugins/${dir}" -name '*.py' ! -name '__init__.py' -printf '%f\n' | sed 's/\.py$//' | sort)
  got=$(cd "${work}" && ansible-doc -t "${kind}" -l llmd.verify | awk '{print $1}' | sed 's/^llmd\.verify\.//' | sort)
  if [ "${want}" != "${got}" ]; then
    echo "ansible-doc lists other ${kind}s than the tree has:"; diff <(echo "${want}") <(echo "${got}") || true; exit 1
  fi
  echo "installed tarball: ansible-doc lists all $(echo "${want}" | wc -l) ${kind}s"
done
roles=$(cd "${work}" && ansible-doc -t role -l llmd.verify | grep -c '^llmd\.verify\.')
[ "${roles}" -eq "$(find roles -mindepth 1 -maxdepth 1 -type d | wc -l)" ] || { echo "ansible-doc lists ${roles} roles"; exit 1; }
echo "installed tarball: ansible-doc lists all ${roles} roles"
