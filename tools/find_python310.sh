#!/usr/bin/env sh
# Print the path of a working Python 3.10 interpreter (lava-dl 0.6.0 / lava-nc 0.10.0 need >=3.10,<3.11).
# Order: $PYTHON310, python3.10 on PATH, pyenv's 3.10.x, /usr/bin/python3.10 (tools/find_python.sh).
"$(dirname "$0")/find_python.sh" 3.10 PYTHON310 && exit 0
cat >&2 <<'MSG'
error: no Python 3.10 interpreter found (lava-dl 0.6.0 and lava-nc 0.10.0 require Python >=3.10,<3.11).
Get one with:  pyenv install 3.10.13   (or: apt-get install python3.10 python3.10-venv)
or point to it: make test PYTHON310=/path/to/python3.10
MSG
exit 1
