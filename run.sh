#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./run.sh demo [options]   set up, then run the initialization study (the main job)
#   ./run.sh test             set up, then run ruff (lint and format check) and the tests
# Set-up is idempotent: a virtualenv in .venv, the package in editable mode with its
# extras, and Debian's graphviz (and python3-venv) packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")"

ensure_dot() {
    command -v dot >/dev/null 2>&1 && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "run.sh: installing Debian's graphviz package (the dot program)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
    else
        echo "run.sh: the graphviz 'dot' program is missing; install it (e.g. 'sudo apt-get install graphviz') and run again" >&2
        exit 1
    fi
}

ensure_venv() {
    local stamp=.venv/.installed
    if [ ! -x .venv/bin/python ]; then
        if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then
            if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
                echo "run.sh: installing Debian's python3-venv package" >&2
                DEBIAN_FRONTEND=noninteractive apt-get update -qq
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            else
                echo "run.sh: python3 cannot create virtualenvs; install python3-venv" >&2
                exit 1
            fi
        fi
        python3 -m venv .venv
    fi
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e '.[dev,data]'
        touch "$stamp"
    fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    demo)
        ensure_dot; ensure_venv
        exec .venv/bin/tinygrad-init demo "$@" ;;
    test)
        ensure_dot; ensure_venv
        .venv/bin/ruff check tinygrad_init tests tools examples
        .venv/bin/ruff format --check --quiet tinygrad_init tests tools examples
        # One BLAS thread per test worker: two workers on two cores, no oversubscription.
        OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 exec .venv/bin/python -m pytest -n 2 "$@" ;;
    *)
        echo "usage: ./run.sh demo [options] | ./run.sh test [pytest options]" >&2
        exit 2 ;;
esac
