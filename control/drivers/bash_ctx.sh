# bash_ctx.sh - the long-lived Bash of one sbxfs context (bash bash_ctx.sh).
#
# Same protocol as python_ctx.py (docs/execution.md): commands on stdin,
# "NONCE CODE_LEN STDIN_LEN\n" then the code and the stdin bytes; the run's
# output on stdout/stderr; a marker line "\x1eSBXFS" NONCE ':{"exit":N}' on
# the original stderr when the run ends, after ':{}' on the original stdout. Code runs with eval in this shell, so
# cd, variables, functions, aliases and exports persist. `exit` ends the
# context's shell (it starts afresh on the next run).
exec 3<&0 4>&2 5>&1 0</dev/null
__sbx_in=/tmp/.sbxfs-ctx-stdin.$$
__sbx_busy=
__sbx_done() {
	printf '\036SBXFS%s:{}\n' "$__sbx_nonce" >&5
	printf '\036SBXFS%s:{"exit":%d,"png":[]}\n' "$__sbx_nonce" "$1" >&4
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
			__sbx_data=
			if [ "$__sbx_i" -gt 0 ]; then
				LC_ALL=C IFS= read -r -d '' -N "$__sbx_i" __sbx_data <&3
			fi
			printf '%s' "$__sbx_data" >"$__sbx_in"
			unset __sbx_data
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
