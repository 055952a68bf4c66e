#!/usr/bin/env sh
# Print the path of a working Python X.Y interpreter: find_python.sh X.Y VAR, where $VAR may name one.
# Order: $VAR, pythonX.Y on PATH, pyenv's X.Y.*, /usr/bin and /usr/local/bin pythonX.Y. Exit 1 if none.
want=$1; var=$2
ok() { "$1" -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$want')" >/dev/null 2>&1; }
for c in "$(eval "printf '%s' \"\${$var:-}\"")" "python$want"; do
  [ -n "$c" ] && p=$(command -v "$c" 2>/dev/null) && ok "$p" && { "$p" -c 'import sys; print(sys.executable)'; exit 0; }
done
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/"$want".*/bin/python 2>/dev/null | sort -rV); do
    ok "$p" && { echo "$p"; exit 0; }
  done
fi
for p in /usr/bin/python"$want" /usr/local/bin/python"$want"; do ok "$p" && { echo "$p"; exit 0; }; done
exit 1
