#!/bin/sh
# sleep: sleep one second at a time, reporting progress. On cancel or timeout Spool sends
# SIGTERM to the process group, then SIGKILL after exec.grace_sec.
set -eu
input=$(cat)
seconds=$(printf '%s' "$input" | sed -n 's/.*"seconds"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
seconds=${seconds:-30}

i=0
trap 'echo "stopped after ${i}s" >&2; exit 143' TERM INT
printf '{"steps_total": %d}\n' "$seconds" >&3
while [ "$i" -lt "$seconds" ]; do
	# Sleeping in the background and waiting lets the trap run at once on SIGTERM.
	sleep 1 &
	wait $!
	i=$((i + 1))
	printf 'slept %d/%d\n' "$i" "$seconds"
	printf '{"progress": %d, "steps_completed": %d, "message": "%ds left"}\n' \
		$((i * 100 / seconds)) "$i" $((seconds - i)) >&3
done
printf '{"result": {"slept": %d}}\n' "$seconds" >&3
