# bash_ctx.sh - the long-lived Bash of one sbxfs context (bash bash_ctx.sh).
#
# Same protocol as python_ctx.py (docs/execution.md, control/ctx_proto.h):
# commands on stdin, "NONCE CODE_LEN STDIN_LEN\n" then the code and the stdin
# bytes; the run's output on stdout/stderr; at its end the frame
# "\x1eSBXFS" NONCE ":\n" on the original stdout, then
# "\x1eSBXFS" NONCE ":" EXIT " 0 0\n" (no result, no figures) on the original
# stderr. Code runs with eval in this shell, so cd, variables, functions,
# aliases and exports persist. `exit` ends the context's shell (it starts
# afresh on the next run).
# The code is read with `read -N`, which drops NUL bytes without counting
# them: sbxfs refuses bash code that holds one (EINVAL). The stdin bytes may
# hold any byte, so they are copied with `head -c`, which reads no further.
exec 3<&0 4>&2 5>&1 0</dev/null
__sbx_in=/tmp/.sbxfs-ctx-stdin.$$
__sbx_busy=
__sbx_done() {
	printf '\036SBXFS%s:\n' "$__sbx_nonce" >&5
	printf '\036SBXFS%s:%d 0 0\n' "$__sbx_nonce" "$(($1 & 255))" >&4
	__sbx_busy=
	rm -f "$__sbx_in"
}
while :; do
	while LC_ALL=C IFS=' ' read -r __sbx_nonce __sbx_n __sbx_i <&3; do
		__sbx_code=
		if [ "$__sbx_n" -gt 0 ]; then
			LC_ALL=C IFS= read -r -d '' -N "$__sbx_n" __sbx_code <&3
		fi
		__sbx_from=/dev/null
		if [ "$__sbx_i" -ge 0 ]; then
			if [ "$__sbx_i" -gt 0 ]; then
				head -c "$__sbx_i" <&3 >"$__sbx_in"
			else
				: >"$__sbx_in"
			fi
			__sbx_from=$__sbx_in
		fi
		__sbx_busy=1
		eval "$__sbx_code" <"$__sbx_from"
		__sbx_done $?
	done
	# Reached at EOF of the commands, or when the code ran `break` at top level.
	if [ -n "$__sbx_busy" ]; then
		__sbx_done 0
	else
		exit 0
	fi
done
