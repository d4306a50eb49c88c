package eventlog

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// Handler is a slog.Handler that passes every record to the next handler
// (when that one is enabled for its level) and copies the records that
// carry an "event" attribute, with every attribute bound by With, to a Log.
// Events are logged at Info or above, outside any group; they reach the
// Log whatever the next handler's level.
type Handler struct {
	next   slog.Handler
	log    *Log
	attrs  []slog.Attr // bound by WithAttrs, keys prefixed by their groups
	prefix string      // the open groups, "a.b."
}

// NewHandler returns a Handler copying events to l; a nil l copies
// nothing.
func NewHandler(next slog.Handler, l *Log) *Handler {
	return &Handler{next: next, log: l}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level) || (h.log != nil && level >= slog.LevelInfo)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if h.log != nil && r.Level >= slog.LevelInfo && h.prefix == "" && isEvent(r) {
		// A failed write must not fail the mail: it is reported to the
		// next handler once per line, which is enough to notice.
		if err := h.log.Write(h.encode(r)); err != nil && h.next.Enabled(ctx, slog.LevelError) {
			er := slog.NewRecord(time.Now(), slog.LevelError, "event log write failed", 0)
			er.AddAttrs(slog.String("err", err.Error()))
			h.next.Handle(ctx, er)
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		a.Key = h.prefix + a.Key
		c.attrs = append(c.attrs, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

// isEvent reports whether r has a top-level "event" attribute.
func isEvent(r slog.Record) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == "event"
		return !found
	})
	return found
}

// encode makes the JSON line of r: time, msg, level, then the bound and
// the record's attributes in order, groups flattened into dotted keys.
func (h *Handler) encode(r slog.Record) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"time":`...)
	b = append(r.Time.UTC().AppendFormat(append(b, '"'), time.RFC3339Nano), '"')
	for _, a := range h.attrs {
		b = appendAttr(b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		b = appendAttr(b, h.prefix, a)
		return true
	})
	b = append(b, `,"msg":`...)
	b = appendString(b, r.Message)
	return append(b, '}')
}

func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if a.Key == "" && v.Kind() != slog.KindGroup {
		return b
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			b = appendAttr(b, p, ga)
		}
		return b
	}
	b = append(b, ',', '"')
	b = appendEscaped(appendEscaped(b, prefix), a.Key)
	b = append(b, '"', ':')
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindFloat64:
		return appendJSON(b, v.Float64())
	case slog.KindDuration:
		return appendString(b, v.Duration().String())
	case slog.KindTime:
		return appendString(b, v.Time().UTC().Format(time.RFC3339Nano))
	}
	x := v.Any()
	if l, ok := x.([]string); ok {
		b = append(b, '[')
		for i, e := range l {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		return append(b, ']')
	}
	if err, ok := x.(error); ok {
		return appendString(b, err.Error())
	}
	if s, ok := x.(interface{ String() string }); ok {
		if _, isJSON := x.(json.Marshaler); !isJSON {
			return appendString(b, s.String())
		}
	}
	return appendJSON(b, x)
}

func appendJSON(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		j, _ = json.Marshal(err.Error())
	}
	return append(b, j...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	return append(appendEscaped(append(b, '"'), s), '"')
}

// appendEscaped appends s escaped for a JSON string (RFC 8259 §7), without
// the quotes; invalid UTF-8 becomes U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\ufffd"...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
