#!/usr/bin/env sh
# Print the path of a working Python 3.10 interpreter (lava-dl 0.6.0 / lava-nc 0.10.0 need >=3.10,<3.11).
# Order: $PYTHON310, python3.10 on PATH, pyenv's 3.10.x, /usr/bin/python3.10.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' >/dev/null 2>&1; }
for c in "${PYTHON310:-}" python3.10; do
  [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && ok "$p" && { "$p" -c 'import sys; print(sys.executable)'; exit 0; }
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/3.10.*/bin/python 2>/dev/null | sort -rV); do
    ok "$p" && { echo "$p"; exit 0; }
  done
fi
for p in /usr/bin/python3.10 /usr/local/bin/python3.10; do ok "$p" && { echo "$p"; exit 0; }; done
cat >&2 <<'MSG'
error: no Python 3.10 interpreter found (lava-dl 0.6.0 and lava-nc 0.10.0 require Python >=3.10,<3.11).
Get one with:  pyenv install 3.10.13   (or: apt-get install python3.10 python3.10-venv)
or point to it: make test PYTHON310=/path/to/python3.10
MSG
exit 1
