#!/usr/bin/env bash
# Refresh every third-party image pin, NAME:TAG@sha256:DIGEST, in the Dockerfiles' ARG
# defaults and the manifests' image: fields, to the digest the registry serves for
# NAME:TAG now (the multi-platform index, as `crane digest` and `docker buildx imagetools`
# report it). Needs a registry and crane or docker buildx; --check only reports drift.
#   images/pin-digests.sh            rewrite the pins in place
#   images/pin-digests.sh --check    exit 1 when a pin differs from the registry
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") check=0 ;;
  --check) check=1 ;;
  *) echo "usage: images/pin-digests.sh [--check]" >&2; exit 2 ;;
esac

resolve() {  # NAME:TAG -> sha256:..., from the registry
  if command -v crane >/dev/null 2>&1; then
    crane digest "$1"
  elif command -v docker >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
    # the JSON template: some buildx versions ignore a plain '{{.Manifest.Digest}}'
    docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"[:space:]'
  else
    echo "pin-digests: neither crane nor docker buildx is available" >&2
    return 1
  fi
}

pin='[A-Za-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}'
mapfile -t files < <(printf '%s\n' images/*/Dockerfile; find manifests -name '*.yaml' | sort)
mapfile -t refs < <(grep -ohE "$pin" "${files[@]}" | sort -u)
[ "${#refs[@]}" -gt 0 ] || { echo "pin-digests: no NAME:TAG@sha256:... pins found" >&2; exit 1; }

drift=0
for ref in "${refs[@]}"; do
  image=${ref%@*}
  old=${ref#*@}
  new=$(resolve "$image")
  if ! [[ $new =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-digests: no digest for $image (got '$new')" >&2
    exit 1
  fi
  if [ "$new" = "$old" ]; then
    echo "$image: $old (unchanged)"
    continue
  fi
  drift=1
  echo "$image: $old -> $new"
  if [ "$check" = 0 ]; then
    for f in "${files[@]}"; do
      # -i.bak then rm: the form GNU and BSD sed both accept
      if grep -qF "$ref" "$f"; then sed -i.bak "s|${ref}|${image}@${new}|g" "$f" && rm -f "$f.bak"; fi
    done
  fi
done
if [ "$check" = 1 ] && [ "$drift" = 1 ]; then exit 1; fi
exit 0
