#!/usr/bin/env bash
# Runs the Python SDK's tests (unit, real server, mypy --strict) with a Python that has
# httpx and pytest, and mypy if possible. The first python3 on PATH may lack Debian's
# packages (pyenv), so /usr/bin/python3 is tried too. Extra arguments go to pytest.
# Debian packages: apt-get install -y python3-httpx python3-pytest mypy
set -euo pipefail
cd "$(dirname "$0")"
pick() {
	for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
		[ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
		if "$cand" -c "import $1" 2>/dev/null; then echo "$cand"; return; fi
	done
}
py=$(pick "httpx, pytest, mypy")
[ -n "$py" ] || py=$(pick "httpx, pytest")
if [ -z "$py" ]; then
	echo "no python3 with httpx and pytest; install them: apt-get install -y python3-httpx python3-pytest mypy" >&2
	exit 1
fi
echo "python: $(command -v "$py") ($("$py" --version 2>&1))"
exec "$py" -m pytest tests -p no:cacheprovider "$@"
