#!/usr/bin/env bash
# bench/compare.sh: the same loads against jodmai and against Postfix +
# Dovecot, on this machine, in the same run, A/B interleaved; prints raw
# numbers and ratios.
#
# Everything runs privately on loopback from a temporary directory: a
# Postfix instance (own config_directory, queue and ports) delivering over
# LMTP to a Dovecot instance (own base_dir, passwd-file, Maildir), and a
# jodmai with its own data directory. System-wide services are never
# started, stopped or reconfigured; the only system change is installing the
# Debian packages postfix, dovecot-imapd, dovecot-pop3d (and dovecot-lmtpd)
# if missing, which needs root. Every daemon started here is stopped on
# exit.
#
# Knobs (environment): ROUNDS (2), USERS (8), CONNS (8), N (smtp messages
# per round, 4000), SIZE (4096), IMAP_DUR (15s), IDLE_CONNS (200),
# IDLE_DUR (5s), PROFILES ("smtp pop3 imap imaptest idle sink relay"),
# IMAP_ROUNDS (1: body samples per LOGIN), DOVECOT_SCHEME (doveadm pw's
# default), IMAPTEST_SECS (30), IMAPTEST_CLIENTS (10), IMAPTEST_MBOX (the
# imaptest profile's mbox; default: built with test/imaptest/corpus-mbox.sh),
# DOVECOT_PERF=1 (Dovecot's documented high-performance mode instead of its
# default high-security one: login processes and imap processes reused, one
# login process per core kept ready; default off), KEEP=1 keeps the
# temporary directory (with every imaptest output).
# Output: human lines, and every result as JSON lines in $OUT (default
# bench/results.jsonl).
set -euo pipefail

ROUNDS=${ROUNDS:-2}
USERS=${USERS:-8}
CONNS=${CONNS:-8}
N=${N:-4000}
SIZE=${SIZE:-4096}
IMAP_DUR=${IMAP_DUR:-15s}
IDLE_CONNS=${IDLE_CONNS:-200}
IDLE_DUR=${IDLE_DUR:-5s}
IMAP_ROUNDS=${IMAP_ROUNDS:-1}
PROFILES=${PROFILES:-smtp pop3 imap imaptest idle sink relay}
IMAPTEST_SECS=${IMAPTEST_SECS:-30}
IMAPTEST_CLIENTS=${IMAPTEST_CLIENTS:-10}
PASS=bench-pass-$RANDOM$RANDOM
DOMAIN=bench.example

here=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$here/bench/results.jsonl}
WORK=$(mktemp -d /tmp/jodmai-compare.XXXXXX)
chmod 755 "$WORK" # Dovecot's mail processes run as nobody

# Ports: jodmai 12xxx, Postfix 2525, Dovecot 11xxx.
J_SMTP=127.0.0.1:12525 J_POP3=127.0.0.1:12110 J_IMAP=127.0.0.1:12143 J_SUB=127.0.0.1:12587
# The relay profile's sink (both MTAs relay to it), and the ceiling sinks.
RELAY_SINK=127.0.0.1:12600 J_SINK=127.0.0.1:12601 PF_SINK=127.0.0.1:12602
RELAY_DOMAIN=remote.example
P_SMTP=127.0.0.1:2525 D_POP3=127.0.0.1:11110 D_IMAP=127.0.0.1:11143 D_LMTP=11024

pids=()
cleanup() {
	set +e
	[ -n "${PF_STARTED:-}" ] && postfix -c "$WORK/postfix" stop >/dev/null 2>&1
	[ -n "${DC_STARTED:-}" ] && doveadm -c "$WORK/dovecot/dovecot.conf" stop >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	sleep 1
	# Anything of ours still alive (a dovecot child, a postfix master).
	if [ -f "$WORK/dovecot/run/master.pid" ]; then kill "$(cat "$WORK/dovecot/run/master.pid")" 2>/dev/null; fi
	if [ -f "$WORK/postfix/spool/pid/master.pid" ]; then kill "$(tr -d ' ' <"$WORK/postfix/spool/pid/master.pid")" 2>/dev/null; fi
	if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# --- packages -------------------------------------------------------------
need=()
command -v postfix >/dev/null || need+=(postfix)
command -v dovecot >/dev/null || need+=(dovecot-imapd dovecot-pop3d)
[ -e /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >"$WORK/apt.log" 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$WORK/apt.log" 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >>"$WORK/apt.log" 2>&1; } ||
		{ cat "$WORK/apt.log" >&2; exit 1; }
fi

# --- jodmai ---------------------------------------------------------------
log "building jodmai"
(cd "$here" && go build -o "$WORK/jodmai" ./cmd/jodmai)
J="$WORK/jodmai"
users=()
for i in $(seq 1 "$USERS"); do users+=("user$i@$DOMAIN"); done
USERLIST=$(IFS=,; echo "${users[*]}")

mkdir -p "$WORK/jodmai-data"
cat >"$WORK/jodmai.toml" <<EOF
hostname = "jodmai.bench.localhost"
data = "$WORK/jodmai-data"
[listen]
smtp = "$J_SMTP"
submission = "$J_SUB"
submissions = ""
pop3 = "$J_POP3"
pop3s = ""
imap = "$J_IMAP"
imaps = ""
http = ""
https = ""
metrics = ""
[limits]
max_connections = 20000
max_connections_per_ip = 20000
[remote]
relay_host = "$RELAY_SINK"
[msgauth]
enabled = false
EOF
$J domain add --config "$WORK/jodmai.toml" "$DOMAIN" >/dev/null
for u in "${users[@]}"; do
	echo "$PASS" | $J user add --config "$WORK/jodmai.toml" --password-stdin "$u" >/dev/null
done
$J serve --config "$WORK/jodmai.toml" >"$WORK/jodmai.log" 2>&1 &
J_PID=$!
pids+=("$J_PID")

# --- Dovecot ----------------------------------------------------------------
D="$WORK/dovecot"
mkdir -p "$D/run" "$D/state" "$WORK/mail"
chown nobody: "$WORK/mail"
: >"$D/users"
# Hashed with doveadm pw's default scheme (what a Dovecot admin gets;
# {CRYPT} bcrypt cost 5 with Debian's 2.3), or DOVECOT_SCHEME (e.g. ARGON2ID, which Dovecot
# runs with m=64MiB,t=3 where jodmai's argon2id is m=19MiB,t=2). Both
# servers pay for a password check at every login.
if [ -n "${DOVECOT_SCHEME:-}" ]; then
	hash=$(doveadm pw -s "$DOVECOT_SCHEME" -p "$PASS")
else
	hash=$(doveadm pw -p "$PASS")
fi
for u in "${users[@]}"; do echo "$u:$hash::::::" >>"$D/users"; done
# Dovecot's defaults start a new imap-login process and a new imap process
# for every connection (service_count = 1). DOVECOT_PERF=1 reuses both.
dc_login="" dc_imap=""
if [ -n "${DOVECOT_PERF:-}" ]; then
	dc_login="service_count = 0
  process_min_avail = $(nproc)"
	dc_imap="service_count = 0"
fi
cat >"$D/dovecot.conf" <<EOF
# Private instance for bench/compare.sh; nothing shared with /etc/dovecot.
instance_name = jodmai-bench
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# Dovecot's auth cache, like jodmai's credential cache (10 minutes, a
# verified password is not hashed again): without it every login pays
# a full hash and the comparison measures only the caches.
auth_cache_size = 10M
auth_cache_ttl = 10 min
auth_cache_negative_ttl = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = username_format=%Lu $D/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$WORK/mail/%d/%n
}
mail_location = maildir:~/Maildir
# Dovecot's default, spelled out: fsync when needed to not lose data (the
# message file before it is moved into new/, index files).
mail_fsync = optimized
mail_max_userip_connections = 100000
protocol imap {
  mail_max_userip_connections = 100000
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${D_IMAP##*:}
  }
  inet_listener imaps {
    port = 0
  }
  process_limit = 20000
  $dc_login
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = ${D_POP3##*:}
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap {
  process_limit = 20000
  $dc_imap
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $D_LMTP
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
default_client_limit = 40000
default_vsz_limit = 0
EOF
dovecot -c "$D/dovecot.conf"
DC_STARTED=1

# --- Postfix ---------------------------------------------------------------
P="$WORK/postfix"
mkdir -p "$P/spool" "$P/data"
chown postfix: "$P/data"
vmap=$(for u in "${users[@]}"; do printf '%s=ok, ' "$u"; done)
cat >"$P/main.cf" <<EOF
# Private instance for bench/compare.sh; nothing shared with /etc/postfix.
compatibility_level = 3.6
queue_directory = $P/spool
data_directory = $P/data
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.localhost
mydomain = bench.localhost
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [${RELAY_SINK%:*}]:${RELAY_SINK##*:}
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = inline:{ ${vmap%, } }
virtual_transport = lmtp:inet:127.0.0.1:$D_LMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_connection_rate_limit = 0
biff = no
EOF
cat >"$P/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
$P_SMTP inet   n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
postfix -c "$P" check >"$WORK/postfix-check.log" 2>&1 || { cat "$WORK/postfix-check.log" >&2; exit 1; }
postfix -c "$P" start >"$WORK/postfix-start.log" 2>&1 || { cat "$WORK/postfix-start.log" "$P/maillog" >&2; exit 1; }
PF_STARTED=1

# --- wait for every port ---------------------------------------------------
for a in $J_SMTP $J_SUB $J_POP3 $J_IMAP $P_SMTP $D_POP3 $D_IMAP; do
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${a%:*}/${a##*:}") 2>/dev/null && break
		sleep 0.1
	done
done

# --- the loads ---------------------------------------------------------------
: >"$OUT"
bench() { # name profile flags...: runs the load tool, records its JSON
	local name=$1 profile=$2
	shift 2
	local json
	if ! json=$("$J" bench --json --users "$USERLIST" --pass "$PASS" -c "$CONNS" "$@" "$profile"); then
		echo "FAILED: $name $profile $*" >&2
		[ -n "$json" ] || return 0
	fi
	echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["server"]=sys.argv[1]; print(json.dumps(r))' "$name" >>"$OUT"
	echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%-8s %-5s %s" % (sys.argv[1], r["profile"], {"smtp":"%.0f msgs/s accepted (%.0f/s delivered) p50 %.2fms p99 %.2fms" % (r["msgs_per_sec"], r.get("delivered_per_sec",0), r.get("p50_ms",0), r.get("p99_ms",0)), "pop3":"%.0f msgs/s %.1f MB/s" % (r["msgs_per_sec"], r["mb_per_sec"]), "imap":"%.0f ops/s" % r["ops_per_sec"], "relay":"%.0f msgs/s accepted, %.0f msgs/s relayed to the sink" % (r["msgs_per_sec"], r.get("delivered_per_sec",0)), "idle":"%d conns, RSS %d -> %d -> %d KiB, %.1f KiB/conn, marginal %.1f KiB/conn" % (r["sessions"], r.get("rss_before_kb",0), r.get("rss_mid_kb",0), r.get("rss_after_kb",0), r.get("rss_per_conn_kb",0), r.get("rss_marginal_kb",0))}[r["profile"]]), "errors", r["errors"], r.get("verify_detail",""))' "$name"
}

# idle: the load tool sums the RSS of the server's process tree (Dovecot
# runs a process per IMAP connection) before and while holding the
# connections.
idle() { # name addr root-pid
	local name=$1 addr=$2 root=$3
	bench "$name" idle --addr "$addr" -c "$IDLE_CONNS" --duration "$IDLE_DUR" --pid "$root"
}

DC_PID=$(cat "$D/run/master.pid")
want() { case " $PROFILES " in *" $1 "*) return 0 ;; esac; return 1; }
if ! want smtp && { want pop3 || want imap || want idle; }; then
	# These loads need mail: deliver it once, unmeasured.
	"$J" bench --users "$USERLIST" --pass "$PASS" -c "$CONNS" -n "$N" --size "$SIZE" --addr "$J_SMTP" smtp >/dev/null
	"$J" bench --users "$USERLIST" --pass "$PASS" -c "$CONNS" -n "$N" --size "$SIZE" --addr "$P_SMTP" --verify-pop3 "$D_POP3" --verify-wait 5m smtp >/dev/null
fi
# --- imaptest ------------------------------------------------------------------
# Dovecot's imaptest in its stress mode (state-tracked: it checks every
# reply against what it has seen), the same on both servers: the same
# corpus mbox (appended from its start each run), clients, seconds, seed
# (the round number), USERS users (user=user%d@DOMAIN users=USERS: each new
# connection picks one of them at random, so clients share mailboxes) and
# password (Dovecot hashed with DOVECOT_SCHEME like every other profile).
# It works in its own mailbox, IMAPTEST_BOX, created here on both servers,
# so its appends and expunges (it keeps about 30 messages there) never touch
# the INBOX the other profiles measure. No checkpoints (checkpoint=0): they
# stop every client for a full-state comparison, which is not throughput,
# and imaptest 924f619 can panic when a run ends inside one (see
# test/imaptest/run.sh). imaptest's default command mix: LOGIN, LIST,
# STATUS, SELECT, FETCH, FETCH2, STORE, STORE \Deleted, EXPUNGE, APPEND,
# LOGOUT, with a new connection after each LOGOUT.
#
# Throughput is the sum of all command counts in imaptest's final
# "Totals:" line (the tagged OK replies of every command kind, the
# wind-down's LOGOUTs included), divided by imaptest's wall-clock time
# (secs plus the start and the wind-down, when clients finish what they
# are doing and log out). Any "Error:", "Panic:" or "Fatal:" line counts
# as an error and is printed. imaptest is one single-threaded process: its
# own CPU seconds are recorded (client_cpu_s) beside the server's
# (server_cpu_s, its process tree), since on 2 cores the client can be the
# limit for both servers.
IMAPTEST_BOX=imaptest-bench
imaptest_ok=""
if want imaptest; then
	if ! command -v imaptest >/dev/null; then
		echo "imaptest: not installed, profile skipped (build it with /work/shared/tools/build-imaptest; see DEVELOPERS.md)"
	else
		IMAPTEST_MBOX=${IMAPTEST_MBOX:-}
		if [ -z "$IMAPTEST_MBOX" ]; then
			log "building the imaptest corpus mbox"
			IMAPTEST_MBOX="$WORK/corpus.mbox"
			bash "$here/test/imaptest/corpus-mbox.sh" "$IMAPTEST_MBOX" >&2 || IMAPTEST_MBOX=""
		fi
		if [ -z "$IMAPTEST_MBOX" ] || [ ! -s "$IMAPTEST_MBOX" ]; then
			echo "imaptest: no corpus mbox (npm missing or corpus-mbox.sh failed), profile skipped"
		else
			# Its mailbox, on both servers, for every user.
			for a in "$J_IMAP" "$D_IMAP"; do
				python3 - "${a%:*}" "${a##*:}" "$PASS" "$IMAPTEST_BOX" "${users[@]}" <<'EOF'
import imaplib, sys
host, port, pw, box, *users = sys.argv[1:]
for u in users:
    c = imaplib.IMAP4(host, int(port), timeout=30)
    c.login(u, pw)
    c.create(box)  # NO if it exists already: fine
    typ, data = c.select(box)
    if typ != "OK":
        sys.exit("imaptest: SELECT %s for %s on %s:%s: %s" % (box, u, host, port, data))
    c.logout()
EOF
			done
			imaptest_ok=1
		fi
	fi
fi
# imaptest_run name addr root-pid round: one imaptest stress run, recorded
# like the other profiles (JSON line in $OUT, one human line, the Totals).
imaptest_run() {
	local name=$1 addr=$2 root=$3 round=$4
	local raw="$WORK/imaptest-$name-$round.txt" json
	local linebuf=()
	if command -v stdbuf >/dev/null; then linebuf=(stdbuf -oL); fi
	if ! json=$(python3 - "$name" "$raw" "$root" "$IMAPTEST_SECS" "$IMAPTEST_CLIENTS" "$USERS" -- \
		"${linebuf[@]}" imaptest host="${addr%:*}" port="${addr##*:}" \
		user="user%d@$DOMAIN" users="$USERS" pass="$PASS" mbox="$IMAPTEST_MBOX" box="$IMAPTEST_BOX" \
		clients="$IMAPTEST_CLIENTS" secs="$IMAPTEST_SECS" checkpoint=0 seed="$round" <<'EOF'
import json, os, subprocess, sys, time

name, raw, root, secs, clients, users = sys.argv[1:7]
cmd = sys.argv[8:]
secs = int(secs)

def tree_cpu(root):
    # CPU seconds of root and its live descendants, each with its reaped
    # children (Dovecot's per-connection processes end up in the master's
    # cutime once they exit).
    tck = os.sysconf("SC_CLK_TCK")
    kids, cpu = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
        cpu[int(d)] = sum(int(x) for x in f[11:15])
    total, todo, seen = 0, [root], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += cpu.get(p, 0)
        todo.extend(kids.get(p, []))
    return total / tck

cpu0 = tree_cpu(int(root))
r0 = os.times()
t0 = time.monotonic()
timed_out = False
with open(raw, "wb") as f:
    try:
        # imaptest stops at secs and waits up to 30 s more for its clients
        # to log out; past that (and a margin) it is killed.
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                            timeout=secs + 90).returncode
    except subprocess.TimeoutExpired:
        rc, timed_out = -1, True
wall = time.monotonic() - t0
r1 = os.times()
server_cpu = tree_cpu(int(root)) - cpu0
client_cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)

lines = open(raw, errors="replace").read().splitlines()
errors = [l for l in lines if l.startswith(("Error:", "Panic:", "Fatal:"))]
warnings = [l for l in lines if l.startswith("Warning:")]
names, counts = [], []
if "Totals:" in lines:
    i = len(lines) - 1 - lines[::-1].index("Totals:")
    if i + 1 < len(lines):
        names = lines[i + 1].split()
        for l in lines[i + 2:]:
            f = l.split()
            if "%" not in l and len(f) == len(names) and all(x.isdigit() for x in f):
                counts = [int(x) for x in f]
                break
finished = bool(counts) and not timed_out
if not finished:
    errors.append("imaptest did not finish (no Totals line%s); exit %d" % (", killed after %d s" % (secs + 90) if timed_out else "", rc))
total = sum(counts)
per = {}
for n, c in zip(names, counts):
    per[n if n not in per else n + "2"] = c
print(json.dumps({
    "profile": "imaptest", "clients": int(clients), "users": int(users), "secs": secs,
    "wall_secs": round(wall, 3), "commands": total, "per_command": per,
    "cmds_per_sec": total / wall if wall > 0 else 0,
    "client_cpu_s": round(client_cpu, 2), "server_cpu_s": round(server_cpu, 2),
    "server_cpu_us_per_cmd": round(server_cpu / total * 1e6, 1) if total else None,
    "errors": len(errors), "error_lines": errors[:20], "warnings": len(warnings),
    "exit": rc, "finished": finished,
    "totals_header": " ".join(names), "totals": " ".join(str(c) for c in counts),
}))
EOF
	); then
		echo "FAILED: $name imaptest" >&2
		[ -n "$json" ] || return 0
	fi
	echo "$json" | python3 -c 'import json,sys; r=json.load(sys.stdin); r["server"]=sys.argv[1]; print(json.dumps(r))' "$name" >>"$OUT"
	echo "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("%-8s %-5s %.0f cmds/s (%d commands in %.1f s; CPU s: server %.1f, imaptest %.1f) errors %d warnings %d" % (
    sys.argv[1], r["profile"], r["cmds_per_sec"], r["commands"], r["wall_secs"],
    r["server_cpu_s"], r["client_cpu_s"], r["errors"], r["warnings"]))
print("         Totals: %s" % r["totals_header"])
print("                 %s" % r["totals"])
for l in r["error_lines"][:10]:
    print("         imaptest: %s" % l[:300])
if r["errors"] > 10:
    print("         imaptest: ... %d more error lines" % (r["errors"] - 10))
' "$name"
}

for r in $(seq 1 "$ROUNDS"); do
	log "round $r/$ROUNDS"
	if want smtp; then
		bench jodmai smtp --addr "$J_SMTP" -n "$N" --size "$SIZE" --verify-pop3 "$J_POP3"
		bench postfix smtp --addr "$P_SMTP" -n "$N" --size "$SIZE" --verify-pop3 "$D_POP3" --verify-wait 5m
	fi
	if want sink; then
		# The no-disk ceiling: the same SMTP load against a sink that
		# stores nothing (ours, and Postfix's smtp-sink when installed).
		"$J" bench --addr "$J_SINK" --duration 10m sink >/dev/null &
		sinkpid=$!
		pids+=("$sinkpid")
		sleep 0.3
		bench sink-jodmai smtp --addr "$J_SINK" -n "$N" --size "$SIZE" --users "x@$RELAY_DOMAIN"
		kill "$sinkpid" 2>/dev/null; wait "$sinkpid" 2>/dev/null || true
		if command -v smtp-sink >/dev/null; then
			smtp-sink -u nobody "$PF_SINK" 256 >/dev/null 2>&1 &
			sinkpid=$!
			pids+=("$sinkpid")
			sleep 0.3
			bench smtp-sink smtp --addr "$PF_SINK" -n "$N" --size "$SIZE" --users "x@$RELAY_DOMAIN"
			kill "$sinkpid" 2>/dev/null; wait "$sinkpid" 2>/dev/null || true
		fi
	fi
	if want relay; then
		# Outbound: submit for remote recipients; each MTA relays to the
		# sink the profile starts (jodmai's [remote] relay_host, Postfix's
		# relayhost), which counts every message and any duplicate.
		rusers=$(for i in $(seq 1 "$USERS"); do printf 'r%d@%s,' "$i" "$RELAY_DOMAIN"; done)
		bench jodmai relay --addr "$J_SUB" --user "${users[0]}" --sink "$RELAY_SINK" -n "$N" --size "$SIZE" --users "${rusers%,}" --verify-wait 5m
		bench postfix relay --addr "$P_SMTP" --from "${users[0]}" --sink "$RELAY_SINK" -n "$N" --size "$SIZE" --users "${rusers%,}" --verify-wait 5m
	fi
	if want pop3; then
		bench jodmai pop3 --addr "$J_POP3" -n "$CONNS"
		bench dovecot pop3 --addr "$D_POP3" -n "$CONNS"
	fi
	if want imap; then
		bench jodmai imap --addr "$J_IMAP" --duration "$IMAP_DUR" --rounds "$IMAP_ROUNDS"
		bench dovecot imap --addr "$D_IMAP" --duration "$IMAP_DUR" --rounds "$IMAP_ROUNDS"
	fi
	if [ -n "$imaptest_ok" ]; then
		# Alternate which server goes first, round by round.
		if [ $((r % 2)) = 1 ]; then
			imaptest_run jodmai "$J_IMAP" "$J_PID" "$r"
			imaptest_run dovecot "$D_IMAP" "$DC_PID" "$r"
		else
			imaptest_run dovecot "$D_IMAP" "$DC_PID" "$r"
			imaptest_run jodmai "$J_IMAP" "$J_PID" "$r"
		fi
	fi
	if want idle; then
		idle jodmai "$J_IMAP" "$J_PID"
		idle dovecot "$D_IMAP" "$DC_PID"
	fi
done

# --- ratios (medians over rounds) -------------------------------------------
python3 - "$OUT" <<'EOF'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(server, profile, key):
    v = [r[key] for r in rs if r["server"] == server and r["profile"] == profile and r.get(key) is not None]
    return statistics.median(v) if v else float("nan")
print()
print("%-28s %12s %12s %8s" % ("measure (median of rounds)", "jodmai", "reference", "ratio"))
for label, prof, key, ref, better in [
    ("smtp msgs/s (vs Postfix)", "smtp", "msgs_per_sec", "postfix", 1),
    ("smtp delivered/s (vs Postfix)", "smtp", "delivered_per_sec", "postfix", 1),
    ("smtp p99 ms (vs Postfix)", "smtp", "p99_ms", "postfix", -1),
    ("smtp msgs/s (vs smtp-sink)", "smtp", "msgs_per_sec", "smtp-sink", 1),
    ("smtp msgs/s (vs our sink)", "smtp", "msgs_per_sec", "sink-jodmai", 1),
    ("relay accepted/s (vs Postfix)", "relay", "msgs_per_sec", "postfix", 1),
    ("relay relayed/s (vs Postfix)", "relay", "delivered_per_sec", "postfix", 1),
    ("pop3 msgs/s (vs Dovecot)", "pop3", "msgs_per_sec", "dovecot", 1),
    ("imap ops/s (vs Dovecot)", "imap", "ops_per_sec", "dovecot", 1),
    ("imaptest cmds/s (vs Dovecot)", "imaptest", "cmds_per_sec", "dovecot", 1),
    ("imaptest server CPU us/cmd", "imaptest", "server_cpu_us_per_cmd", "dovecot", -1),
    ("idle KiB/conn (vs Dovecot)", "idle", "rss_per_conn_kb", "dovecot", -1),
    ("idle marginal KiB/conn", "idle", "rss_marginal_kb", "dovecot", -1),
]:
    a, b = med("jodmai", prof, key), med(ref, prof, key)
    ratio = a / b if b else float("nan")
    print("%-28s %12.1f %12.1f %7.2fx%s" % (label, a, b, ratio, "" if better > 0 else " (lower is better)"))
errs = sum(r["errors"] for r in rs)
bad = [r["server"] + " " + r["profile"] for r in rs if r.get("verified") is False]
print("errors over all runs:", errs, "; failed verifications:", bad or "none")
EOF
