#!/bin/sh
# flaky: exit 75 (EX_TEMPFAIL) tells Spool the failure is worth a retry; any other
# non-zero status fails the run for good.
set -eu
input=$(cat)

num() {
	v=$(printf '%s' "$input" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p")
	printf '%s' "${v:-$2}"
}
fail_percent=$(num fail_percent 50)
succeed_on=$(num succeed_on_attempt 0)
attempt=${SPOOL_ATTEMPT:-1}

fail() {
	echo "attempt $attempt: temporary failure, asking for a retry" >&2
	exit 75
}

if [ "$succeed_on" -gt 0 ]; then
	[ "$attempt" -ge "$succeed_on" ] || fail
else
	r=$(od -An -N1 -tu1 /dev/urandom | tr -d ' \n') # 0..255
	[ $((r * 100 / 256)) -ge "$fail_percent" ] || fail
fi
echo "attempt $attempt: success"
printf '{"result": {"attempt": %d}}\n' "$attempt" >&3
