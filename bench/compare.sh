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
# IDLE_DUR (5s), PROFILES ("smtp pop3 imap idle sink relay"), IMAP_ROUNDS (1: body samples per LOGIN), DOVECOT_SCHEME (doveadm pw's default), KEEP=1 keeps the temporary directory. Output: human lines,
# and every result as JSON lines in $OUT (default bench/results.jsonl).
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
PROFILES=${PROFILES:-smtp pop3 imap idle sink relay}
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
if ! want smtp; then
	# The other loads need mail: deliver it once, unmeasured.
	"$J" bench --users "$USERLIST" --pass "$PASS" -c "$CONNS" -n "$N" --size "$SIZE" --addr "$J_SMTP" smtp >/dev/null
	"$J" bench --users "$USERLIST" --pass "$PASS" -c "$CONNS" -n "$N" --size "$SIZE" --addr "$P_SMTP" --verify-pop3 "$D_POP3" --verify-wait 5m smtp >/dev/null
fi
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
    v = [r[key] for r in rs if r["server"] == server and r["profile"] == profile and key in r]
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
