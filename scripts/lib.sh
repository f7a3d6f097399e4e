# shellcheck shell=bash
# Sourced by the scripts that build tools: the pinned versions (tools/versions.env), the
# cache they build into, Go, and the one way a tool is built once per version stamp.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tools/versions.env
source "$REPO/tools/versions.env"
# shellcheck disable=SC2034 # read by the scripts that source this file
CACHE_DIR=${OFFLOAD_CACHE_DIR:-/var/cache/offload}

# use_go WHO: Go on PATH (or where go.dev's archive installs it), modules from the proxy, this
# toolchain only (a module asking for a newer Go fails instead of downloading one).
use_go() {
  if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
    PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null || { echo "$1: Go is needed (https://go.dev/dl/)" >&2; exit 1; }
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local
}

# build_once STAMP WANT COMMAND...: runs COMMAND unless the file STAMP already holds WANT
# (what it names is built), then writes WANT there. A failed COMMAND leaves no stamp.
build_once() {
  local stamp=$1 want=$2
  shift 2
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  mkdir -p "$(dirname "$stamp")"
  "$@"
  echo "$want" > "$stamp"
}

# go_build_wrapped NAME MODULE VERSION PACKAGE OUTPUT [LDFLAGS]: builds PACKAGE of
# MODULE@VERSION into OUTPUT from a wrapper module that requires it, so a tool whose go.mod
# has replace directives (etcd's, Jaeger's, syft's), which `go install pkg@version` refuses,
# builds the same as one without.
go_build_wrapped() {
  local name=$1 module=$2 version=$3 package=$4 output=$5 ldflags=${6:--s -w}
  local src
  src=$(mktemp -d)
  (
    cd "$src" || exit 1
    printf 'module offload.local/%s\n\ngo 1.24\n\nrequire %s %s\n' "$name" "$module" "$version" > go.mod
    printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" > tools.go
    go mod tidy >/dev/null 2>&1 || go mod tidy
    CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$output" "$package"
  )
  rm -rf "$src"
}

# python_tool_venv WHO VENV NAME: a venv of its own for a Python tool whose pins clash with
# ours (requirements/NAME.in under requirements/NAME-constraints.txt), installed again only
# when those constraints change.
python_tool_venv() {
  local who=$1 venv=$2 name=$3
  local constraints=$REPO/requirements/$name-constraints.txt
  if ! cmp -s "$constraints" "$venv/.constraints" 2>/dev/null; then
    echo "$who: installing $name into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -c "$constraints" -r "$REPO/requirements/$name.in"
    cp "$constraints" "$venv/.constraints"
  fi
}

# module_dir MODULE@VERSION: where the module proxy's copy of it was unpacked.
module_dir() {
  go mod download -json "$1" | awk -F'"' '$2 == "Dir" {print $4}'
}
