#!/bin/bash
# bench/smtp-one.sh BIN [N] [PORTPREFIX]: one A/B sample of the SMTP load. Starts `BIN serve` on a
# fresh data dir (SMTP 127.0.0.1:${PORTPREFIX}25, pprof on ${PORTPREFIX}60, msgauth off), 8 users,
# runs `BIN bench smtp` (8 connections, 4 KiB, N messages, default 40000) and prints msgs/s and
# the server's CPU seconds (utime+stime from /proc). Interleave two binaries a few times:
#   for i in 1 2 3; do for b in old new; do bench/smtp-one.sh /tmp/jodmai-$b; done; done
# PROF=SECONDS also saves a CPU profile (cpu.prof) from the running server and keeps the dir.
# Loopback only; everything it starts is stopped.
set -euo pipefail
BIN=$1; N=${2:-40000}; P=${3:-136}
D=$(mktemp -d /tmp/smtp-one.XXXX)
cat >$D/j.toml <<EOT
hostname = "jodmai.bench.localhost"
data = "$D/data"
[listen]
smtp = "127.0.0.1:${P}25"
submission = ""
submissions = ""
pop3 = ""
pop3s = ""
imap = ""
imaps = ""
http = ""
https = ""
metrics = ""
[limits]
max_connections = 20000
max_connections_per_ip = 20000
[msgauth]
enabled = false
EOT
$BIN domain add --config $D/j.toml bench.example >/dev/null
U=""
for i in 1 2 3 4 5 6 7 8; do echo password1 | $BIN user add --config $D/j.toml --password-stdin user$i@bench.example >/dev/null; U="$U,user$i@bench.example"; done
$BIN serve --config $D/j.toml --pprof 127.0.0.1:${P}60 >$D/log 2>&1 &
S=$!
trap 'kill $S 2>/dev/null || true' EXIT
sleep 1
if [ -n "${PROF:-}" ]; then (sleep 2; curl -s -o $D/cpu.prof "http://127.0.0.1:${P}60/debug/pprof/profile?seconds=$PROF") & fi
$BIN bench --users ${U#,} --pass password1 -c 8 -n $N --size 4096 --addr 127.0.0.1:${P}25 smtp
wait %2 2>/dev/null || true
awk '{printf "server cpu %.2fs (user %.2f, system %.2f)\n", ($14+$15)/100, $14/100, $15/100}' /proc/$S/stat
kill $S; wait $S || true
if [ -n "${PROF:-}" ]; then echo "profile: $D/cpu.prof"; else rm -rf $D; fi
