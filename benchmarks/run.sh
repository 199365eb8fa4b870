#!/usr/bin/env bash
# Run the benchmarks: bash benchmarks/run.sh [--backend postgres|sqlite|all] [--workload NAME] [--quick]
#
# Creates benchmarks/.venv (separate from any development venv, so DBOS never becomes a
# dependency of the library), installs this repository with its postgres extra plus the
# pinned peers from benchmarks/requirements.txt, then runs `python -m benchmarks`.
# The install is redone only when pyproject.toml or requirements.txt change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="$here/.venv"
python="${BENCH_PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv"
fi

stamp="$venv/.installed"
want="$(cat "$root/pyproject.toml" "$here/requirements.txt" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "installing durable-workflows[postgres] and $(grep -v '^#' "$here/requirements.txt" | xargs) into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$root[postgres]" -r "$here/requirements.txt"
    echo "$want" > "$stamp"
fi

cd "$root"
exec "$venv/bin/python" -m benchmarks "$@"
