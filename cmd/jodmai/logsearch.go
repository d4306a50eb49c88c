package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jodmai/jodmai/internal/eventlog"
)

func runLogSearch(ctx context.Context, env *cmdEnv, args []string) error {
	var q eventlog.Query
	env.flags.StringVar(&q.From, "from", "", "sender `ADDR` (or @domain)")
	env.flags.StringVar(&q.To, "to", "", "recipient `ADDR` (or @domain)")
	env.flags.StringVar(&q.MsgID, "msgid", "", "Message-`ID`")
	env.flags.StringVar(&q.QID, "qid", "", "queue `ID` (the id in \"250 Ok: queued as ID\")")
	env.flags.StringVar(&q.Kind, "event", "", "event `KIND`: "+strings.Join(eventlog.Kinds, ", "))
	since := env.flags.String("since", "", "only events newer than `DUR` ago (90m, 24h, 7d) or since a RFC 3339 time")
	env.flags.IntVar(&q.Limit, "limit", eventlog.DefaultLimit, "at most `N` events, newest first (max "+strconv.Itoa(eventlog.MaxLimit)+")")
	asJSON := env.flags.Bool("json", false, "print each event as its JSON line")
	_, cfg, err := env.parseConfig(args, 0, 0)
	if err != nil {
		return err
	}
	if q.Kind != "" && !slices.Contains(eventlog.Kinds, q.Kind) {
		return usagef("unknown event kind %q (one of %s)", q.Kind, strings.Join(eventlog.Kinds, ", "))
	}
	if *since != "" {
		if q.Since, err = eventlog.ParseSince(*since, time.Now()); err != nil {
			return usagef("--since: %v", err)
		}
	}
	evs, err := eventlog.Search(eventlog.Dir(cfg.Data), q)
	if err != nil {
		return err
	}
	for _, e := range evs {
		if *asJSON {
			b, _ := json.Marshal(e.Fields)
			fmt.Fprintf(env.stdout, "%s\n", b)
			continue
		}
		writeEvent(env.stdout, e)
	}
	if len(evs) == 0 && !*asJSON {
		fmt.Fprintln(env.stderr, "no matching events")
	}
	return nil
}

// writeEvent prints one event on one line: time, kind, then key=value
// with the ids and addresses first.
func writeEvent(w io.Writer, e eventlog.Event) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s", e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind)
	add := func(k string, v any) {
		s := fmt.Sprint(v)
		if vs, ok := v.([]any); ok {
			parts := make([]string, len(vs))
			for i, x := range vs {
				parts[i] = fmt.Sprint(x)
			}
			s = strings.Join(parts, ",")
		}
		if strings.ContainsAny(s, " \"=") || s == "" {
			s = strconv.Quote(s)
		}
		fmt.Fprintf(&b, " %s=%s", k, s)
	}
	first := []string{"qid", "msgid", "from", "rcpt", "rcpts", "code", "reason", "host", "text"}
	for _, k := range first {
		if v, ok := e.Fields[k]; ok && v != "" {
			add(k, v)
		}
	}
	var rest []string
	for k := range e.Fields {
		if !slices.Contains(first, k) && k != "time" && k != "event" && k != "msg" {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		add(k, e.Fields[k])
	}
	fmt.Fprintln(w, b.String())
}
