#!/bin/sh
# The size rules of the code (ARCHITECTURE.md, issue 10): no function of
# more than 80 lines and no source file of more than 1,000.  KNF makes
# both visible to awk: a function body opens with "{" in column one and
# closes with "}" in column one.
# Usage: regress/style.sh file.c...
status=0
for f in "$@"; do
	n=$(wc -l < "$f")
	if [ "$n" -gt 1000 ]; then
		echo "style: $f: $n lines, more than 1000" >&2
		status=1
	fi
	awk -v file="$f" '
		/^[A-Za-z_][A-Za-z0-9_]*\(/ { name = $0; sub(/\(.*/, "", name) }
		/^\{/ { start = NR }
		/^\}/ && start {
			len = NR - start - 1
			if (len > 80) {
				printf("style: %s:%d: %s has %d lines, more than 80\n",
				    file, start, name, len) > "/dev/stderr"
				bad = 1
			}
			start = 0
		}
		END { exit bad }
	' "$f" || status=1
done
[ $status = 0 ] && echo "style: $# files, no function over 80 lines, no file over 1000"
exit $status
