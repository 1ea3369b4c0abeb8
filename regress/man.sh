#!/bin/sh
# Check that each manual page renders completely with both formatters
# users have: mandoc, and groff as Debian's man(1) runs it.  groff
# stops a page at some mdoc errors ("cannot chop empty macro") and still
# exits 0, so its warnings are read, and the section headings of the two
# renderings are compared: a page cut short by groff loses its last ones.
# Usage: regress/man.sh page...
status=0
for page in "$@"; do
	if [ ! -r "$page" ]; then
		echo "man: $page: cannot read" >&2
		status=1
		continue
	fi
	if ! mandoc -Tlint -Wwarning "$page"; then
		echo "man: $page: mandoc -Tlint warns" >&2
		status=1
	fi
	warn=$(groff -man -ww -z "$page" 2>&1)
	if [ -n "$warn" ]; then
		printf 'man: %s: groff warns:\n%s\n' "$page" "$warn" >&2
		status=1
	fi
	# Section headings are the lines that start in column one.
	m=$(mandoc -Tutf8 "$page" | sed 's/.\x08//g' | grep -E '^[A-Z][A-Z0-9 ]+$')
	g=$(groff -man -Tutf8 "$page" 2>/dev/null | sed 's/.\x08//g' |
	    grep -E '^[A-Z][A-Z0-9 ]+$')
	# And man(1) itself, which is what a user runs.
	w=$(MANWIDTH=80 man --warnings -E UTF-8 -l -P cat "$page" 2>&1 \
	    >/dev/null)
	if [ -n "$w" ]; then
		printf 'man: %s: man --warnings:\n%s\n' "$page" "$w" >&2
		status=1
	fi
	u=$(MANWIDTH=80 man -E UTF-8 -l -P cat "$page" 2>/dev/null |
	    sed 's/.\x08//g' | grep -E '^[A-Z][A-Z0-9 ]+$')
	if [ -z "$m" ] || [ "$m" != "$g" ] || [ "$m" != "$u" ]; then
		printf 'man: %s: sections differ\nmandoc: %s\ngroff:  %s\nman:    %s\n' \
		    "$page" "$(echo $m)" "$(echo $g)" "$(echo $u)" >&2
		status=1
		continue
	fi
	echo "man: $page: $(echo "$m" | wc -l) sections, last $(echo "$m" |
	    tail -n 1), the same in mandoc, groff and man"
done
exit $status
