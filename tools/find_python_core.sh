#!/usr/bin/env sh
# Print the path of a Python 3.11 interpreter for the core environment (`make core-test`: SpikingJelly 2.x, numpy 2,
# no Lava). 3.11 first: the CPU build of torch these machines hold on disk is for 3.11.
# Order: $PYTHON_CORE, python3.11 on PATH, pyenv's 3.11.x, /usr/bin/python3.11.
ok() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1; }
for c in "${PYTHON_CORE:-}" python3.11; do
  [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && ok "$p" && { "$p" -c 'import sys; print(sys.executable)'; exit 0; }
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/3.11.*/bin/python 2>/dev/null | sort -rV); do
    ok "$p" && { echo "$p"; exit 0; }
  done
fi
for p in /usr/bin/python3.11 /usr/local/bin/python3.11; do ok "$p" && { echo "$p"; exit 0; }; done
echo "error: no Python 3.11 interpreter found for the core environment; pyenv install 3.11.7, or" \
     "make core-test PYTHON_CORE=/path/to/python3.11" >&2
exit 1
