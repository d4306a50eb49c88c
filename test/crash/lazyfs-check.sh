#!/usr/bin/env bash
# lazyfs-check.sh: a power-loss durability check of jodmai on LazyFS.
#
# LazyFS (https://github.com/dsrhaslab/lazyfs) is a FUSE file system that
# keeps every write in a cache of its own until the file is fsynced, and
# throws away everything unsynced when it reads `lazyfs::clear-cache` from
# its FIFO: the state a power cut leaves. It is an independent cross-check
# of test/crash's TestPowerLoss (whose internal/powerfs is ours). LazyFS
# loses unsynced file data only: creates, renames, unlinks and mkdirs go
# straight to the backing directory, so it does not test directory fsyncs.
#
# What it does, all on 127.0.0.1 and every loop bounded:
#   - mounts LazyFS on WORK/mnt (backing directory WORK/root) and puts
#     jodmai's data directory there;
#   - `jodmai domain add`, `jodmai user add --password-stdin` for two
#     accounts, a power cut (clear-cache), and checks that both accounts
#     are still there;
#   - CYCLES times: start `jodmai serve` (SMTP and POP3 only), verify over
#     POP3 (STAT, UIDL, TOP n 0 of every message) what the previous cycle
#     left; deliver over SMTP a tenth of the cycle's N small messages and
#     of its SECOND messages to the second account, and its BIG messages
#     over 128 KiB (body files); delete over POP3 about one message in ten
#     of the first account and one in five of the second (QUIT answered
#     +OK), and DELE three more in a session dropped without QUIT (they
#     must stay); deliver the other nine tenths of the small and second
#     account's messages (so that before the kill the accounts only
#     receive mail that goes through the delivery journal, as in issue
#     14); kill -9 the server right after the last acknowledgement, clear
#     LazyFS's cache, and run `jodmai check` (reported, not counted);
#   - a final start and verification.
# A verification counts, per account: expected (acknowledged by SMTP and
# not deleted by a completed QUIT), present, lost, duplicated, and
# deleted-but-back. Every number but expected and present must be 0.
#
# Measured with the defaults (4 cycles, 6,420 messages acknowledged):
#   82086e9 (main): 0 lost, 0 duplicated, 0 deleted-but-back; 10 cycles too
#   20b149c (before 37d22cc, the fix of issue 14): 4,756 of the 6,102
#     expected lost (1,189 of 1,605 in the first cycle), none duplicated
#   `jodmai check` found both stores consistent after every cut: losing
#   whole deliveries is only seen by counting them.
#
# Usage:
#   test/crash/lazyfs-check.sh -l LAZYFS_BIN -j JODMAI_BIN [options]
#
#   -l FILE   the lazyfs binary (or $LAZYFS)              required
#   -j FILE   the jodmai binary (or $JODMAI)              required
#   -n N      small messages per cycle                    default 1500
#   -b N      messages over 128 KiB per cycle             default 5
#   -s N      messages to the second account per cycle   default 100
#   -c N      cycles (kill -9 + power cut)                default 4
#   -w DIR    work directory (must not exist or be empty) default mktemp
#   -k        keep the work directory (it is kept anyway on failure)
#   -h        this help
# Exit status: 0 nothing lost, duplicated or back; 1 some was; 2 set-up
# error. Needs root or a user allowed to mount FUSE (/dev/fuse,
# fusermount3), python3.
#
# Example, from the repository root:
#   go build -o /tmp/jodmai ./cmd/jodmai
#   test/crash/lazyfs-check.sh -l /tmp/lazyfs-work/src/lazyfs/lazyfs/build/lazyfs -j /tmp/jodmai
#
# Getting and building LazyFS (not installed by CI; it needs a network or
# local copies of LazyFS, toml11 v3.7.1, spdlog v1.10.0; googletest
# release-1.11.0 only for LazyFS's own unit tests):
#   apt-get install -y cmake g++ libfuse3-dev fuse3 pkg-config
#   W=/tmp/lazyfs-work/src; mkdir -p $W && cd $W
#   git clone https://github.com/dsrhaslab/lazyfs      # tested at a47a5ba
#   git clone -b v3.7.1 https://github.com/ToruNiina/toml11
#   git clone -b v1.10.0 https://github.com/gabime/spdlog
#   cd lazyfs/libs/libpcache && mkdir -p build && cd build
#   cmake .. -DFETCHCONTENT_FULLY_DISCONNECTED=ON \
#       -DFETCHCONTENT_SOURCE_DIR_TOML=$W/toml11 \
#       -DFETCHCONTENT_SOURCE_DIR_SPDLOG=$W/spdlog && cmake --build . -j2
#   # lazyfs's CMakeLists looks for spdlog's headers here:
#   ln -sfn $W/spdlog _deps/spdlog-src
#   cd $W/lazyfs/lazyfs && mkdir -p build && cd build
#   cmake .. -DLAZYFS_BUILD_TESTS=OFF && cmake --build . -j2
#   # -> $W/lazyfs/lazyfs/build/lazyfs (it finds libpcache.so by its rpath)
# With network access the two -DFETCHCONTENT_* lines can be left out and
# CMake fetches the dependencies itself (LazyFS's build.sh scripts).
#
# LazyFS is started as its scripts/mount-lazyfs.sh does:
#   lazyfs MNT --config-path CONF -o allow_other -o modules=subdir \
#       -o subdir=ROOT -f
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^# fusermount3/p' "$0" | sed 's/^# \{0,1\}//'; }

LAZYFS=${LAZYFS:-} JODMAI=${JODMAI:-}
N=1500 BIG=5 SECOND=100 CYCLES=4 WORK="" KEEP=0
while getopts "l:j:n:b:s:c:w:kh" o; do
	case $o in
	l) LAZYFS=$OPTARG ;;
	j) JODMAI=$OPTARG ;;
	n) N=$OPTARG ;;
	b) BIG=$OPTARG ;;
	s) SECOND=$OPTARG ;;
	c) CYCLES=$OPTARG ;;
	w) WORK=$OPTARG ;;
	k) KEEP=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
die() { echo "lazyfs-check: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*"; }
[[ -x $LAZYFS ]] || { usage >&2; die "no lazyfs binary (-l)"; }
[[ -x $JODMAI ]] || { usage >&2; die "no jodmai binary (-j)"; }
for v in N BIG SECOND CYCLES; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
((CYCLES >= 1 && CYCLES <= 100 && N <= 100000 && BIG <= 1000 && SECOND <= 100000)) || die "numbers out of range"
command -v python3 >/dev/null || die "python3 is needed"
command -v fusermount3 >/dev/null || die "fusermount3 is needed (apt-get install fuse3)"
[[ -c /dev/fuse ]] || die "/dev/fuse is missing"
LAZYFS=$(realpath "$LAZYFS") JODMAI=$(realpath "$JODMAI")

if [[ -z $WORK ]]; then
	WORK=$(mktemp -d /tmp/lazyfs-check.XXXXXX)
else
	mkdir -p "$WORK"
	[[ -z $(ls -A "$WORK") ]] || die "$WORK is not empty"
	WORK=$(realpath "$WORK")
fi
ROOT=$WORK/root MNT=$WORK/mnt FIFO=$WORK/faults.fifo LCONF=$WORK/lazyfs.toml
LLOG=$WORK/lazyfs.log CONF=$WORK/jodmai.toml DATA=$WORK/mnt/data
STATE=$WORK/ledger.json SLOG=$WORK/serve.log PY=$WORK/lzc.py
mkdir -p "$ROOT" "$MNT"

LFS_PID="" SRV_PID="" STATUS=2
cleanup() {
	set +e
	if [[ -n $SRV_PID ]] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -9 "$SRV_PID"; wait "$SRV_PID" 2>/dev/null
	fi
	if grep -q " $MNT fuse" /proc/mounts; then
		for _ in 1 2 3 4 5; do
			fusermount3 -u "$MNT" 2>/dev/null && break
			sleep 1
		done
		grep -q " $MNT fuse" /proc/mounts && fusermount3 -uz "$MNT"
	fi
	if [[ -n $LFS_PID ]] && kill -0 "$LFS_PID" 2>/dev/null; then
		kill "$LFS_PID"
		for _ in $(seq 20); do kill -0 "$LFS_PID" 2>/dev/null || break; sleep 0.5; done
		kill -9 "$LFS_PID" 2>/dev/null
	fi
	wait 2>/dev/null
	if ((KEEP == 0 && STATUS == 0)); then
		rm -rf "$WORK"
	else
		echo "work directory kept: $WORK (serve.log, lazyfs.log, ledger.json, root/)"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the SMTP and POP3 client and the ledger, in Python -------------------
cat >"$PY" <<'PYEOF'
import json, os, poplib, random, smtplib, socket, sys, time

def load(p):
    with open(p) as f:
        return json.load(f)

def save(p, st):
    with open(p + ".tmp", "w") as f:
        json.dump(st, f)
    os.replace(p + ".tmp", p)

def hp(a):
    h, p = a.rsplit(":", 1)
    return h, int(p)

def msg(mid, rcpt, size):
    body = []
    n = 0
    line = "The quick brown fox jumps over the lazy dog 0123456789 %s" % mid
    while n < size:
        body.append(line)
        n += len(line) + 2
    return ("From: Sender <sender@example.net>\r\nTo: <%s>\r\n"
            "Subject: lazyfs check %s\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@lzc.example.net>\r\nX-Lzc-Id: %s\r\n\r\n%s\r\n"
            % (rcpt, mid, mid, mid, "\r\n".join(body)))

def cmd_ports(k):
    socks, ports = [], []
    for _ in range(int(k)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(str(s.getsockname()[1]))
    for s in socks:
        s.close()
    print(" ".join(ports))

def cmd_init(state, a1, a2, pw):
    save(state, {"pw": pw, "accounts": [a1, a2],
                 "acked": {a1: [], a2: []}, "deleted": {a1: [], a2: []},
                 "unsure": {a1: [], a2: []}})

def cmd_send(state, addr, cycle, n, big, second, part):
    st = load(state)
    a1, a2 = st["accounts"]
    cycle, n, big, second = int(cycle), int(n), int(big), int(second)
    small = [("c%d-s%05d" % (cycle, i), a1, 300) for i in range(n)]
    bigs = [("c%d-b%03d" % (cycle, j), a1, 140 * 1024 + 7919 * j) for j in range(big)]
    seconds = [("c%d-t%05d" % (cycle, j), a2, 300) for j in range(second)]
    # Part a comes before the cycle's POP3 deletions: a tenth of the small
    # messages and of the second account's, and all the big ones. Part b,
    # the rest, comes after them and right before the kill, and has only
    # small messages: the accounts only receive what goes through the
    # delivery journal, as in issue 14. (A POP3 session's commit, or a
    # big message's, is synced, and a WAL fsync makes every earlier
    # unsynced delivery to that account durable too: the big ones spread
    # through part b hid all but 14 of the old code's losses in the first
    # account.)
    def mix(x, y):
        out = list(x)
        for j, m in enumerate(y):
            out.insert((j + 1) * len(out) // (len(y) + 1), m)
        return out
    if part == "a":
        plan = mix(mix(small[:n // 10], bigs), seconds[:second // 10])
    else:
        plan = mix(small[n // 10:], seconds[second // 10:])
    acked, failed = {a1: 0, a2: 0}, 0
    conn, sent_on_conn = None, 0
    deadline = time.time() + 1800
    for k, (mid, rcpt, size) in enumerate(plan):
        if time.time() > deadline:
            print("send: 30 minutes passed, stopping", flush=True)
            break
        for attempt in range(3):
            try:
                if conn is None or sent_on_conn >= 100:
                    if conn is not None:
                        try:
                            conn.quit()
                        except Exception:
                            pass
                    conn = smtplib.SMTP(*hp(addr), local_hostname="client.example.net", timeout=60)
                    sent_on_conn = 0
                conn.sendmail("sender@example.net", [rcpt], msg(mid, rcpt, size))
                sent_on_conn += 1
                st["acked"][rcpt].append(mid)
                acked[rcpt] += 1
                break
            except smtplib.SMTPResponseException as e:
                print("send %s: %s %s" % (mid, e.smtp_code, e.smtp_error), flush=True)
                if e.smtp_code >= 500:
                    failed += 1
                    break
                conn = None
            except (OSError, smtplib.SMTPException) as e:
                print("send %s: %s" % (mid, e), flush=True)
                conn = None
                time.sleep(0.5)
        else:
            failed += 1
        if (k + 1) % 250 == 0:
            print("  sent %d/%d, acknowledged %d" % (k + 1, len(plan), acked[a1] + acked[a2]), flush=True)
    if conn is not None:
        try:
            conn.quit()
        except Exception:
            pass
    save(state, st)
    print("  cycle %d part %s: acknowledged %d to %s, %d to %s, %d not acknowledged"
          % (cycle, part, acked[a1], a1, acked[a2], a2, failed), flush=True)

def pop(addr, user, pw):
    p = poplib.POP3(*hp(addr), timeout=120)
    p.user(user)
    p.pass_(pw)
    return p

def listing(p):
    """{msgnum: id} from TOP n 0, plus STAT and UIDL counts."""
    count, _ = p.stat()
    uidl = p.uidl()[1]
    ids = {}
    for i in range(1, count + 1):
        _, lines, _ = p.top(i, 0)
        mid = None
        for l in lines:
            if l.lower().startswith(b"x-lzc-id:"):
                mid = l.split(b":", 1)[1].strip().decode()
        ids[i] = mid
    return count, len(uidl), ids

def cmd_delete(state, addr, cycle):
    st = load(state)
    rnd = random.Random(int(cycle))
    for acct, every in zip(st["accounts"], (10, 5)):
        p = pop(addr, acct, st["pw"])
        count, _, ids = listing(p)
        chosen = [i for i in ids if ids[i] and rnd.randrange(every) == 0]
        for i in chosen:
            p.dele(i)
        try:
            r = p.quit()
            ok = r.startswith(b"+OK")
        except Exception as e:
            print("  QUIT: %s" % e)
            ok = False
        dst = st["deleted"] if ok else st["unsure"]
        dst[acct].extend(ids[i] for i in chosen)
        print("  %s: %d messages, %d deleted (QUIT %s)" % (acct, count, len(chosen), "+OK" if ok else "failed"), flush=True)
        # A session dropped without QUIT: its DELEs must not take effect.
        p = pop(addr, acct, st["pw"])
        count2, _ = p.stat()
        k = min(3, count2)
        for i in range(1, k + 1):
            p.dele(i)
        p.sock.close()
        print("  %s: %d DELE in a session dropped without QUIT" % (acct, k), flush=True)
    save(state, st)

def cmd_verify(state, addr, label):
    st = load(state)
    bad = 0
    tot = [0] * 6
    for acct in st["accounts"]:
        acked, deleted, unsure = set(st["acked"][acct]), set(st["deleted"][acct]), set(st["unsure"][acct])
        try:
            p = pop(addr, acct, st["pw"])
            count, nuidl, ids = listing(p)
            p.quit()
        except Exception as e:
            print("  %s %s: POP3 failed: %s" % (label, acct, e), flush=True)
            bad += 1
            continue
        seen = {}
        foreign = 0
        for mid in ids.values():
            if mid is None:
                foreign += 1
            else:
                seen[mid] = seen.get(mid, 0) + 1
        expected = acked - deleted - unsure
        lost = sorted(expected - set(seen))
        dups = sorted(m for m, c in seen.items() if c > 1)
        back = sorted(deleted & set(seen))
        extra = sorted(set(seen) - acked)
        print("  %s %s: STAT %d, UIDL %d; acknowledged %d, deleted %d, expected %d, present %d; "
              "lost %d, duplicated %d, deleted-but-back %d, never acknowledged %d, without id %d"
              % (label, acct, count, nuidl, len(acked), len(deleted), len(expected),
                 len(set(seen) & expected), len(lost), len(dups), len(back), len(extra), foreign), flush=True)
        for k, v in enumerate((len(acked), len(deleted), len(expected), len(set(seen) & expected), len(lost), len(dups) + len(back))):
            tot[k] += v
        for name, l in (("lost", lost), ("duplicated", dups), ("back", back)):
            if l:
                print("    %s: %s%s" % (name, " ".join(l[:10]), " ..." if len(l) > 10 else ""), flush=True)
        if lost or dups or back or count != nuidl:
            bad += 1
    print("  %s TOTAL: acknowledged %d, deleted %d, expected %d, present %d, lost %d, duplicated or back %d"
          % ((label,) + tuple(tot)), flush=True)
    sys.exit(1 if bad else 0)

cmd = sys.argv[1]
args = sys.argv[2:]
{"ports": cmd_ports, "init": cmd_init, "send": cmd_send,
 "delete": cmd_delete, "verify": cmd_verify}[cmd](*args)
PYEOF

# --- LazyFS ---------------------------------------------------------------
cat >"$LCONF" <<EOF
[faults]
fifo_path="$FIFO"
[cache]
apply_eviction=false
[cache.simple]
custom_size="1gb"
blocks_per_page=1
[filesystem]
log_all_operations=false
logfile="$LLOG"
EOF
log "work directory $WORK"
log "mounting LazyFS ($LAZYFS) on $MNT, backing directory $ROOT"
# The config path is given relative to WORK: LazyFS ignores a --config-path
# whose value contains "-o" (as in /tmp/run-old/...) and reads
# config/default.toml instead.
(cd "$WORK" && exec "$LAZYFS" "$MNT" --config-path lazyfs.toml -o allow_other \
	-o modules=subdir -o subdir="$ROOT" -f) >"$WORK/lazyfs.out" 2>&1 &
LFS_PID=$!
disown "$LFS_PID" # LazyFS aborts on unmount (its FIFO thread); no job notice
for i in $(seq 60); do
	grep -q " $MNT fuse" /proc/mounts && [[ -p $FIFO ]] && break
	kill -0 "$LFS_PID" 2>/dev/null || { cat "$WORK/lazyfs.out" >&2; die "lazyfs exited"; }
	((i == 60)) && die "LazyFS not mounted after 30 s"
	sleep 0.5
done

# power_cut: LazyFS drops every write not fsynced; wait until it says so.
CUTS=0
power_cut() {
	local before
	before=$(grep -c "cache is cleared" "$LLOG" || true)
	echo "lazyfs::clear-cache" >"$FIFO"
	for i in $(seq 120); do
		(($(grep -c "cache is cleared" "$LLOG" || true) > before)) && break
		((i == 120)) && die "LazyFS did not clear its cache within 60 s"
		sleep 0.5
	done
	CUTS=$((CUTS + 1))
	log "power cut $CUTS: LazyFS cleared its cache (unsynced writes gone)"
}

# --- jodmai ---------------------------------------------------------------
read -r P_SMTP P_POP3 <<<"$(python3 "$PY" ports 2)"
SMTP=127.0.0.1:$P_SMTP POP3=127.0.0.1:$P_POP3
write_conf() { # $1: also the listeners the current code has (1) or not (0)
	{
		printf 'hostname = "mail.example.org"\ndata = "%s"\nlog_level = "info"\n\n[listen]\n' "$DATA"
		printf 'smtp = "%s"\npop3 = "%s"\n' "$SMTP" "$POP3"
		printf 'submission = ""\nsubmissions = ""\npop3s = ""\nimap = ""\nimaps = ""\n'
		(($1)) && printf 'http = ""\nhttps = ""\nmetrics = ""\n'
		printf '\n[msgauth]\nenabled = false\n\n[dns]\nresolver = "127.0.0.1:1"\n'
	} >"$CONF"
}
# Older jodmai has no http, https and metrics listeners and refuses keys it
# does not know; newer ones listen on them by default, so they must be "".
write_conf 1
if ! out=$("$JODMAI" domain list --config "$CONF" 2>&1); then
	write_conf 0
	out=$("$JODMAI" domain list --config "$CONF" 2>&1) || die "jodmai refuses the config: $out"
fi

A1=alice@example.org A2=bob@example.org PW=lazyfs-check-pw
"$JODMAI" domain add --config "$CONF" example.org
for a in $A1 $A2; do
	echo "$PW" | "$JODMAI" user add --config "$CONF" --password-stdin $a
done
python3 "$PY" init "$STATE" $A1 $A2 "$PW"
power_cut
users=$("$JODMAI" user list --config "$CONF" 2>&1) || true
for a in $A1 $A2; do
	grep -q "$a" <<<"$users" || { echo "$users"; STATUS=1; die "account $a gone after a power cut following user add"; }
done
log "both accounts survive a power cut after user add"

start_server() {
	: >"$WORK/serve.out"
	"$JODMAI" serve --config "$CONF" >"$WORK/serve.out" 2>>"$SLOG" &
	SRV_PID=$!
	for i in $(seq 240); do
		grep -q " serving " "$WORK/serve.out" && return 0
		if ! kill -0 "$SRV_PID" 2>/dev/null; then
			wait "$SRV_PID" || true
			SRV_PID=""
			return 1
		fi
		sleep 0.5
	done
	return 1
}
kill_server() {
	kill -9 "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=""
}

fail=0
t0=$(date +%s)
for c in $(seq "$CYCLES"); do
	log "cycle $c/$CYCLES: start"
	start_server || { tail -20 "$SLOG"; STATUS=1; die "cycle $c: jodmai serve did not start (serve.log above)"; }
	if ((c > 1)); then
		python3 "$PY" verify "$STATE" "$POP3" "after cut $((c - 1))" || fail=1
	fi
	log "cycle $c: delivering $N small, $BIG over 128 KiB to $A1 and $SECOND to $A2 over SMTP $SMTP; a tenth and the big ones now"
	python3 "$PY" send "$STATE" "$SMTP" "$c" "$N" "$BIG" "$SECOND" a
	log "cycle $c: POP3 deletions"
	python3 "$PY" delete "$STATE" "$POP3" "$c"
	log "cycle $c: the other nine tenths (small only)"
	python3 "$PY" send "$STATE" "$SMTP" "$c" "$N" "$BIG" "$SECOND" b
	log "cycle $c: kill -9 jodmai serve (right after the last acknowledgement)"
	kill_server
	power_cut
	if out=$("$JODMAI" check --config "$CONF" 2>&1); then
		log "cycle $c: jodmai check after the power cut: ok ($(tail -1 <<<"$out"))"
	else
		tail -5 <<<"$out"
		log "cycle $c: jodmai check after the power cut reported problems (not counted)"
	fi
done
log "final start"
start_server || { tail -20 "$SLOG"; STATUS=1; die "final: jodmai serve did not start"; }
python3 "$PY" verify "$STATE" "$POP3" "final (after cut $CYCLES)" || fail=1
kill -TERM "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=""
log "done in $(($(date +%s) - t0)) s: $CYCLES cycles, $CUTS power cuts"
if ((fail)); then
	log "FAIL: acknowledged mail lost or duplicated, or deleted mail back (see above)"
	STATUS=1
else
	log "PASS: nothing lost, duplicated or back"
	STATUS=0
fi
exit $STATUS
