#!/bin/sh
# Install the Debian packages named as arguments that are not installed
# yet.  As root this runs apt-get; otherwise it names what is missing.
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing packages:$missing (run as root, or apt-get install them)" >&2
	exit 1
fi
echo "installing:$missing" >&2
# Postfix ships smtp-sink and smtp-source; never set it up as the MTA.
echo "postfix postfix/main_mailer_type select No configuration" |
    debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
# Quiet when it works; the whole output when it does not.
log=$(mktemp) || exit 1
if ! { apt-get update -qq && apt-get install -y -qq \
    --no-install-recommends $missing; } >"$log" 2>&1; then
	cat "$log" >&2
	rm -f "$log"
	echo "could not install:$missing" >&2
	exit 1
fi
rm -f "$log"
