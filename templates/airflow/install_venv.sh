#!/usr/bin/env bash
# Creates (or completes) a virtual environment with Airflow for the DAGs of this folder.
#
#   templates/airflow/install_venv.sh [VENV_DIR]      # default: .airflow-venv/ in the checkout
#
# Airflow is installed from PyPI with requirements.txt and constraints.txt of this folder; the
# detection itself is not installed there: the DAGs call the interpreter of the detection's own
# environment (Airflow Variable rare_runcommand_python).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv=${1:-$(cd "$here/../.." && pwd)/.airflow-venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/airflow" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$here/requirements.txt" -c "$here/constraints.txt"
fi
"$venv/bin/airflow" version > /dev/null
echo "$venv"
