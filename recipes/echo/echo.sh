#!/bin/sh
# echo: print the input and return it as the result.
# Spool writes the input to stdin as one line of JSON, then closes stdin. A JSON line
# {"result": ...} on file descriptor 3 becomes the run's result exactly.
set -eu
input=$(cat)
printf '%s\n' "$input"
printf '{"result": %s}\n' "$input" >&3
