package loadgen

import (
	"context"
	"fmt"
	"time"
)

// runRelay measures an MTA relaying to another server: it starts a Sink
// on cfg.Sink, submits cfg.Count messages to the MTA at cfg.Addr (the smtp
// profile, recipients cfg.Users at a domain the MTA sends to the sink),
// then waits until the sink has received every accepted message. The MTA
// must be configured to deliver those recipients to the sink (a relay
// host, or an MX pointing at it).
//
// Messages is what the MTA accepted; DeliveredPerSec is that count over the
// time from the first connection to the sink's last message. Verification
// fails if the sink got fewer messages than were accepted (after
// VerifyWait, default a minute), more, or any Message-ID twice.
func runRelay(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Sink == "" {
		return nil, fmt.Errorf("relay: no sink address")
	}
	sink, err := StartSink(cfg.Sink)
	if err != nil {
		return nil, err
	}
	defer sink.Close()
	start := time.Now()
	r, err := runSMTP(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.Profile = "relay"
	wait := cfg.VerifyWait
	if wait <= 0 {
		wait = time.Minute
	}
	deadline := time.Now().Add(wait)
	var st SinkStats
	for {
		st = sink.Stats()
		if st.Messages >= r.Messages || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Anything more that arrives soon is a duplicate.
	time.Sleep(200 * time.Millisecond)
	st = sink.Stats()
	ok := st.Messages == r.Messages && st.Duplicates == 0 && st.Errors == 0
	r.Verified = &ok
	r.VerifyDetail = fmt.Sprintf("sink received %d of %d accepted messages, %d duplicates, %d protocol errors",
		st.Messages, r.Messages, st.Duplicates, st.Errors)
	if st.FirstError != "" {
		r.VerifyDetail += " (first: " + st.FirstError + ")"
	}
	if ok && r.Messages > 0 {
		r.DeliveredPerSec = float64(r.Messages) / st.Last.Sub(start).Seconds()
	}
	return r, nil
}
