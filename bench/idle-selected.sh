#!/bin/bash
# bench/idle-selected.sh BIN PORTPREFIX: idle IMAP memory on big mailboxes. Starts
# `BIN serve` on a fresh data dir (SMTP 127.0.0.1:${PORTPREFIX}25, IMAP ...43), fills 8
# users with 5,000 messages each, restarts the server (so the fill leaves nothing in its
# heap), then holds 1,000 connections that SELECT INBOX and IDLE, and prints RSS per
# connection. Loopback only; everything it starts is stopped.

set -euo pipefail
BIN=$1; P=$2
D=$(mktemp -d /tmp/idle.XXXX)
cat > $D/j.toml <<EOT
hostname = "mail.idle.test"
data = "$D/data"
[listen]
smtp = "127.0.0.1:${P}25"
submission = ""
submissions = ""
pop3 = ""
pop3s = ""
imap = "127.0.0.1:${P}43"
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
$BIN domain add --config $D/j.toml idle.test >/dev/null
for i in 1 2 3 4 5 6 7 8; do echo idlepass123 | $BIN user add --config $D/j.toml --password-stdin u$i@idle.test >/dev/null; done
$BIN serve --config $D/j.toml > $D/s.out 2> $D/s.log & echo $! > $D/pid
sleep 1
$BIN bench --addr 127.0.0.1:${P}25 --user-pattern 'u%d@idle.test' --users-count 8 -n 40000 -c 8 smtp > /dev/null
kill $(cat $D/pid); sleep 1
$BIN serve --config $D/j.toml > $D/s.out 2> $D/s.log & echo $! > $D/pid
sleep 1
$BIN bench --addr 127.0.0.1:${P}43 --user-pattern 'u%d@idle.test' --users-count 8 --pass idlepass123 -c 1000 --duration 5s --pidfile $D/pid idle
kill $(cat $D/pid); sleep 1; rm -rf $D
