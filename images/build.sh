#!/usr/bin/env bash
# Build the three images with docker or podman: base, cuda, openvino.
# LINAS_IMAGE_REGISTRY and LINAS_IMAGE_TAG name them, as the compiled pipeline expects.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" info >/dev/null 2>&1; then engine=$candidate; break; fi
done
if [ -z "$engine" ]; then
  echo "make images: neither docker nor podman is available with a running engine here;" >&2
  echo "build on a machine that has one: LINAS_IMAGE_REGISTRY=... make images" >&2
  exit 1
fi
registry=${LINAS_IMAGE_REGISTRY:-ghcr.io/linas-kubeflow}
tag=${LINAS_IMAGE_TAG:-0.1.0}
"$engine" build -f images/base/Dockerfile -t "$registry/linas-base:$tag" .
"$engine" build -f images/cuda/Dockerfile -t "$registry/linas-cuda:$tag" .
"$engine" build -f images/openvino/Dockerfile --build-arg "BASE=$registry/linas-base:$tag" \
  -t "$registry/linas-openvino:$tag" .
echo "built $registry/linas-{base,cuda,openvino}:$tag with $engine"
