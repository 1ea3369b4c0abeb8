#!/bin/sh
# Build every libFuzzer harness of regress/fuzz into build/fuzz and run
# each for SECONDS seconds on a copy of its seed corpus (the tree stays
# clean).  Exits non-zero if a harness fails to build or finds a crash;
# the reproducer is left in build/fuzz/artifacts/.  Names (as in
# fuzz_NAME.c) choose some harnesses only.
#
#	sh regress/fuzz/run.sh [SECONDS [NAME ...]]

set -u

secs=${1:-20}
[ $# -gt 0 ] && shift
case $secs in
''|*[!0-9]*)
	echo "usage: $0 [seconds [name ...]]" >&2
	exit 2
	;;
esac

top=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
cd "$top" || exit 1

CC=${FUZZ_CC:-clang}
out=${FUZZ_OUT:-build/fuzz}
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fno-sanitize-recover=all"
FLAGS="$FLAGS -I. -Ilib"
CFLAGS="$FLAGS -fsanitize=fuzzer,address,undefined"
OBJFLAGS="$FLAGS -fsanitize=fuzzer-no-link,address,undefined"
LIBS=$(pkg-config --libs libbsd libseccomp) || exit 1

# The sources a harness needs: the "FUZZ_SRCS: file ..." lines in the
# harness itself (as many as it takes), else this table, else the whole
# library.
srcs() {
	s=$(sed -n 's/.*FUZZ_SRCS:[[:space:]]*//p' "regress/fuzz/fuzz_$1.c" |
	    tr '\n' ' ')
	if [ -n "${s%% *}" ]; then
		echo "$s"
		return
	fi
	case $1 in
	addr)		echo lib/addr.c ;;
	linebuf)	echo lib/linebuf.c ;;
	imsg)		echo lib/imsg.c lib/conf.c ;;
	cmdline)	echo parent/cmdline.c ;;
	reply)		echo relay/reply.c ;;
	*)		echo lib/*.c ;;
	esac
}

# What else it links with: its "FUZZ_LIBS: -lx ..." lines.
libs() {
	sed -n 's/.*FUZZ_LIBS:[[:space:]]*//p' "regress/fuzz/fuzz_$1.c" |
	    tr '\n' ' '
}

# The object of source file $1, compiled once for every harness (again
# when it or a header is newer).
obj() {
	o="$out/obj/${1%.c}.o"
	if [ ! -f "$o" ] || [ "$1" -nt "$o" ] || [ -n "$(find lib smtpd relay ctl \
	    parent -name '*.h' -newer "$o" | head -1)" ]; then
		mkdir -p "${o%/*}" || return 1
		# shellcheck disable=SC2086
		$CC $OBJFLAGS -c -o "$o" "$1" || return 1
	fi
	echo "$o"
}

# Whether file $1 exists and is newer than the others and the headers.
newest() {
	t=$1
	shift
	[ -f "$t" ] || return 1
	for f in "$@"; do
		[ "$f" -nt "$t" ] && return 1
	done
	[ -z "$(find lib smtpd relay parent ctl -name '*.h' -newer "$t" |
	    head -1)" ]
}

harnesses=
for f in regress/fuzz/fuzz_*.c; do
	[ -f "$f" ] || continue
	h=${f#regress/fuzz/fuzz_}
	harnesses="$harnesses ${h%.c}"
done
if [ $# -gt 0 ]; then
	for h in "$@"; do
		if [ ! -f "regress/fuzz/fuzz_$h.c" ]; then
			echo "$0: no harness regress/fuzz/fuzz_$h.c" >&2
			exit 2
		fi
	done
	harnesses=$*
fi
failed=

mkdir -p "$out/corpus" "$out/artifacts" || exit 1
for h in $harnesses; do
	objs=
	o=
	for src in $(srcs "$h"); do
		o=$(obj "$src") || break
		objs="$objs $o"
	done
	if [ -n "$o" ] && newest "$out/fuzz_$h" "regress/fuzz/fuzz_$h.c" \
	    $objs; then
		continue
	fi
	echo "== build fuzz_$h"
	rm -f "$out/fuzz_$h"
	# shellcheck disable=SC2046,SC2086
	if [ -z "${o:-}" ] || ! $CC $CFLAGS -o "$out/fuzz_$h" \
	    "regress/fuzz/fuzz_$h.c" $objs $LIBS $(libs "$h"); then
		failed="$failed $h(build)"
		continue
	fi
done

for h in $harnesses; do
	[ -x "$out/fuzz_$h" ] || continue
	case $failed in *" $h(build)"*) continue ;; esac
	rm -rf "$out/corpus/$h"
	mkdir -p "$out/corpus/$h" || exit 1
	if [ -d "regress/fuzz/corpus/$h" ]; then
		cp -R "regress/fuzz/corpus/$h/." "$out/corpus/$h/" || exit 1
	fi
	dict=
	[ -f "regress/fuzz/$h.dict" ] && dict="-dict=regress/fuzz/$h.dict"
	echo "== fuzz_$h for ${secs}s"
	# shellcheck disable=SC2086
	if "$out/fuzz_$h" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -max_len=20000 -print_final_stats=1 \
	    -artifact_prefix="$out/artifacts/$h-" $dict \
	    "$out/corpus/$h" >"$out/fuzz_$h.log" 2>&1; then
		grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' \
		    "$out/fuzz_$h.log" | tail -2
	else
		failed="$failed $h"
		echo "fuzz_$h FAILED, see $out/fuzz_$h.log:" >&2
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' \
		    "$out/fuzz_$h.log" | head -10 >&2
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
echo "fuzz: all harnesses clean"
