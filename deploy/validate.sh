#!/usr/bin/env bash
# Renders every kustomize overlay under deploy/kubernetes/ and validates each rendered object
# offline against the Kubernetes OpenAPI schemas (strict: unknown fields are errors). Fails on
# any error. Installs what is missing (kubectl from Debian's kubernetes-client, PyPI's
# kubernetes-validate) and skips the installs when present.
#
#   bash deploy/validate.sh                # the oldest and newest versions below
#   K8S_VERSIONS="1.31.0" bash deploy/validate.sh
set -euo pipefail
cd "$(dirname "$0")/kubernetes"

# The oldest Kubernetes the manifests support (preStop `sleep` is on by default from 1.30) and a
# recent one; kubernetes-validate ships the schemas of both.
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.35.0"}
# Every kustomization a user may apply: the two overlays and the documented variants.
TARGETS=(overlays/single overlays/replicated examples/replicated-autoscaled examples/replicated-existing-secret)

# --- tools ---------------------------------------------------------------------------------
if ! command -v kubectl >/dev/null 2>&1; then
    echo "kubectl missing: installing Debian's kubernetes-client"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kubernetes-client >/dev/null
fi
# The manifests use kustomize components and `labels:` (kustomize v4+, i.e. kubectl 1.21+).
# Debian bookworm's kubernetes-client is 1.20 (kustomize v2): fall back to a standalone
# `kustomize` when one is on the PATH, else say so plainly.
render() {
    if [ -n "${KUSTOMIZE:-}" ]; then "$KUSTOMIZE" build "$1"; else kubectl kustomize "$1"; fi
}
kustomize_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}//p')
case "$kustomize_version" in
    ""|[0-3].*|v[0-3].*)
        if command -v kustomize >/dev/null 2>&1; then
            KUSTOMIZE=$(command -v kustomize)
        else
            echo "error: kubectl's kustomize (${kustomize_version:-unknown}) is older than v4;" \
                 "install kubectl >= 1.21 or a standalone kustomize v4+" >&2
            exit 1
        fi
        ;;
esac

if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "kubernetes-validate missing: installing it from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate \
        || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages kubernetes-validate
    hash -r
fi
command -v kubernetes-validate >/dev/null 2>&1 || {
    echo "error: kubernetes-validate is not on the PATH after installing it" >&2
    exit 1
}

echo "kubectl $(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p')," \
     "kustomize ${KUSTOMIZE:+$($KUSTOMIZE version 2>/dev/null) (standalone)}${KUSTOMIZE:-$kustomize_version}," \
     "kubernetes-validate $(kubernetes-validate --version 2>/dev/null | awk '{print $NF}')"

# --- render and validate -------------------------------------------------------------------
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
failed=0
for target in "${TARGETS[@]}"; do
    file="$out/$(echo "$target" | tr / _).yaml"
    if ! render "$target" >"$file" 2>"$out/render.err"; then
        echo "FAIL $target: kustomize cannot render it"
        sed 's/^/    /' "$out/render.err"
        failed=1
        continue
    fi
    objects=$(grep -c '^kind:' "$file" || true)
    for version in $K8S_VERSIONS; do
        # --strict rejects unknown fields; every object must be valid, warnings included
        # (kubernetes-validate exits non-zero on an invalid object).
        if report=$(kubernetes-validate --strict --quiet -k "$version" "$file" 2>&1); then
            echo "ok   $target: $objects objects valid against Kubernetes $version (strict)"
        else
            echo "FAIL $target against Kubernetes $version:"
            echo "$report" | sed 's/^/    /'
            failed=1
        fi
        if [ -n "$report" ] && [ "$failed" -eq 0 ]; then echo "$report" | sed 's/^/    /'; fi
    done
done

if [ "$failed" -ne 0 ]; then
    echo "kubernetes manifests: INVALID" >&2
    exit 1
fi
echo "kubernetes manifests: all valid"
