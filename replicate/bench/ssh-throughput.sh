#!/usr/bin/env bash
# SSH throughput: rollout's client (x/crypto/ssh through sshx.Runner, 1 MiB writes, the path of a
# replication stream) against OpenSSH's ssh -c aes128-gcm@openssh.com, both into `cat >/dev/null`
# on a throwaway OpenSSH sshd on 127.0.0.1. Runs alternate; prints the median of each and the ratio.
#
#   sudo replicate/bench/ssh-throughput.sh        # SIZE=2G RUNS=3 by default
#
# It installs openssh-server if sshd is missing, never touches the system's sshd (own config,
# keys and port in a temp dir), and stops its sshd on exit.
set -euo pipefail

SIZE=${SIZE:-2G}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/../.."

[ "$(id -u)" = 0 ] || { echo "ssh-throughput: run as root (sshd needs it)" >&2; exit 1; }
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
if [ ! -x "$SSHD" ] || ! command -v ssh >/dev/null; then
	echo "ssh-throughput: installing openssh-server and openssh-client" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null
	SSHD=/usr/sbin/sshd
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

bytes=$(numfmt --from=iec "$SIZE")
ssh-keygen -q -t ed25519 -N '' -f "$tmp/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/id_ed25519"
cp "$tmp/id_ed25519.pub" "$tmp/authorized_keys"

# a free port: nothing answers on it
port=
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 40000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "ssh-throughput: no free port found" >&2; exit 1; }

cat >"$tmp/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $tmp/host_ed25519
PidFile $tmp/sshd.pid
AuthorizedKeysFile $tmp/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
EOF
mkdir -p /run/sshd # privilege separation directory, as the package's unit creates it
"$SSHD" -D -f "$tmp/sshd_config" -E "$tmp/sshd.log" &
pid=$!
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$tmp/host_ed25519.pub")" >"$tmp/known_hosts"
for _ in $(seq 50); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done

go build -o "$tmp/sshcat" ./replicate/bench/sshcat

rollout_run() {
	"$tmp/sshcat" -port "$port" -identity "$tmp/id_ed25519" -known-hosts "$tmp/known_hosts" -bytes "$bytes"
}
openssh_run() {
	local t0 t1
	t0=$(date +%s.%N)
	head -c "$bytes" /dev/zero | ssh -c aes128-gcm@openssh.com -p "$port" -i "$tmp/id_ed25519" \
		-o UserKnownHostsFile="$tmp/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes \
		-o Compression=no root@127.0.0.1 'cat >/dev/null'
	t1=$(date +%s.%N)
	echo "$bytes $t0 $t1" | awk '{ printf "%.1f\n", $1 / ($3 - $2) / 1e6 }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

r=() o=()
for i in $(seq "$RUNS"); do
	r+=("$(rollout_run)")
	o+=("$(openssh_run)")
	echo "run $i: rollout ${r[-1]} MB/s, OpenSSH ${o[-1]} MB/s" >&2
done
rm=$(printf '%s\n' "${r[@]}" | median)
om=$(printf '%s\n' "${o[@]}" | median)
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "OpenSSH: $(ssh -V 2>&1)"
echo "size: $SIZE, runs: $RUNS (median)"
echo "rollout (x/crypto/ssh, aes128-gcm, 1 MiB writes): $rm MB/s"
echo "OpenSSH ssh -c aes128-gcm@openssh.com:           $om MB/s"
awk -v a="$rm" -v b="$om" 'BEGIN { printf "ratio rollout/OpenSSH: %.2f\n", a / b }'
