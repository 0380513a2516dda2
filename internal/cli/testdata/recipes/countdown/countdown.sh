#!/bin/sh
# countdown: count down from n, one line every delay seconds.
# Progress goes to file descriptor 3 as JSON lines, the result too.
set -eu
input=$(cat)

# num KEY DEFAULT prints the number after "KEY": in the input, else DEFAULT.
num() {
	v=$(printf '%s' "$input" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9.]*\).*/\1/p")
	printf '%s' "${v:-$2}"
}
n=$(num n 5)
delay=$(num delay 0.2)

printf '{"steps_total": %d, "progress": 0, "message": "starting"}\n' "$n" >&3
i=$n
while [ "$i" -gt 0 ]; do
	printf '%d\n' "$i"
	done_steps=$((n - i + 1))
	printf '{"progress": %d, "message": "%d to go", "steps_completed": %d}\n' \
		$((done_steps * 100 / n)) $((i - 1)) "$done_steps" >&3
	i=$((i - 1))
	# A fractional sleep is not POSIX, but every common sleep takes one.
	sleep "$delay" 2>/dev/null || sleep 1
done
printf 'liftoff\n'
printf '{"result": {"counted": %d}}\n' "$n" >&3
