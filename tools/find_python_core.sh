#!/usr/bin/env sh
# Print the path of a Python 3.11 interpreter for the core environment (`make core-test`: SpikingJelly 2.x, numpy 2,
# no Lava). 3.11: the CPU build of torch these machines hold on disk is for 3.11. $PYTHON_CORE may name one.
"$(dirname "$0")/find_python.sh" 3.11 PYTHON_CORE && exit 0
echo "error: no Python 3.11 interpreter found for the core environment; pyenv install 3.11.7, or" \
     "make core-test PYTHON_CORE=/path/to/python3.11" >&2
exit 1
