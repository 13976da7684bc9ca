#!/bin/sh
#
# check-plist.sh: `make install` installs exactly what the port's pkg-plist lists, so the two
# cannot drift (make install-check). The plist is read as the ports framework reads it:
#   - @sample etc/X.sample    the staged file is etc/X.sample (pkg copies it to etc/X)
#   - %%PORTEXAMPLES%%        the EXAMPLES option, on; %%EXAMPLESDIR%% is share/examples/PORTNAME
#   - share/man/...N.gz       the framework gzips man pages; make install leaves them plain
#   - USE_RC_SUBR=NAME        etc/rc.d/NAME, made from files/NAME.in, not listed in the plist
# and files/rollout.in must be cmd/rollout/rc.d/rollout with /usr/local as %%PREFIX%%, which
# make install substitutes with its PREFIX. Both a PREFIX of /usr/local and another are tried.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
port=$top/examples/port/sysutils/rollout
make=${MAKE:-make}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0

portvar() { # the value of VAR= in the port's Makefile
	sed -n "s/^$1=[[:space:]]*//p" "$port/Makefile"
}
portname=$(portvar PORTNAME)
rcsubr=$(portvar USE_RC_SUBR)

# the plist, as the paths the port stages (relative to PREFIX)
{
	sed -e 's/^@sample[[:space:]]\{1,\}//' \
	    -e 's/%%PORTEXAMPLES%%//' \
	    -e "s|%%EXAMPLESDIR%%|share/examples/$portname|" \
	    -e "s|%%DATADIR%%|share/$portname|" \
	    -e "s|%%ETCDIR%%|etc/$portname|" \
	    -e 's|^\(share/man/man[1-9]/.*\)\.gz$|\1|' \
	    "$port/pkg-plist" | grep -v '^@'
	for rc in $rcsubr; do
		echo "etc/rc.d/$rc"
	done
} | sort >"$tmp/plist"

# files/rollout.in is the source tree's rc.d script
sed 's|/usr/local|%%PREFIX%%|g' "$top/cmd/rollout/rc.d/rollout" >"$tmp/rollout.in"
if ! cmp -s "$tmp/rollout.in" "$port/files/rollout.in"; then
	echo "check-plist: $port/files/rollout.in is not cmd/rollout/rc.d/rollout with /usr/local as %%PREFIX%%:" >&2
	diff -u "$port/files/rollout.in" "$tmp/rollout.in" >&2 || true
	fail=1
fi

for prefix in /usr/local /opt/rollout; do
	dest=$tmp/stage$(echo "$prefix" | tr / _)
	mkdir -p "$dest"
	if ! "$make" -s -C "$top" install DESTDIR="$dest" PREFIX="$prefix" >"$tmp/make.log" 2>&1; then
		echo "check-plist: make install DESTDIR=$dest PREFIX=$prefix failed:" >&2
		cat "$tmp/make.log" >&2
		exit 1
	fi
	outside=$(cd "$dest" && find . \( -type f -o -type l \) ! -path ".$prefix/*")
	if [ -n "$outside" ]; then
		echo "check-plist: make install PREFIX=$prefix put files outside PREFIX: $outside" >&2
		fail=1
	fi
	(cd "$dest$prefix" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort) >"$tmp/installed"
	if ! cmp -s "$tmp/plist" "$tmp/installed"; then
		echo "check-plist: make install PREFIX=$prefix and $port/pkg-plist differ (- plist, + installed):" >&2
		diff -u "$tmp/plist" "$tmp/installed" >&2 || true
		fail=1
	fi
	# the installed rc.d script is the port's, with %%PREFIX%% substituted
	sed "s|%%PREFIX%%|$prefix|g" "$port/files/rollout.in" >"$tmp/rc"
	if ! cmp -s "$tmp/rc" "$dest$prefix/etc/rc.d/rollout"; then
		echo "check-plist: $prefix/etc/rc.d/rollout is not files/rollout.in with %%PREFIX%%=$prefix" >&2
		fail=1
	fi
	for f in sbin/rollout etc/rc.d/rollout; do
		if [ ! -x "$dest$prefix/$f" ]; then
			echo "check-plist: $prefix/$f is not executable" >&2
			fail=1
		fi
	done
	if ! sh -n "$dest$prefix/etc/rc.d/rollout"; then
		fail=1
	fi
done

# every file of the plist is installed by the port's Makefile too (by name)
while read -r f; do
	case $f in
	sbin/rollout | etc/rc.d/*) continue ;; # GO_TARGET, USE_RC_SUBR
	esac
	if ! grep -q "$(basename "$f")" "$port/Makefile"; then
		echo "check-plist: $port/Makefile does not install $f" >&2
		fail=1
	fi
done <"$tmp/plist"

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "check-plist: make install matches $port/pkg-plist ($(wc -l <"$tmp/plist" | tr -d ' ') files)"
