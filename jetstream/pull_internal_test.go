package jetstream

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

func TestParseMeta(t *testing.T) {
	ts := time.Unix(0, 1700000000123456789)
	tests := []struct {
		name     string
		give     string
		want     natsjs.MsgMetadata
		wantFail bool
	}{
		{
			name: "V1",
			give: "$JS.ACK.TASKS.workers.3.41.57.1700000000123456789.9",
			want: natsjs.MsgMetadata{Sequence: natsjs.SequencePair{Stream: 41, Consumer: 57},
				NumDelivered: 3, NumPending: 9, Timestamp: ts, Stream: "TASKS", Consumer: "workers"},
		},
		{
			name: "V2NoDomain",
			give: "$JS.ACK._.ACCHASH.TASKS.workers.1.2.3.1700000000123456789.0.RANDOM",
			want: natsjs.MsgMetadata{Sequence: natsjs.SequencePair{Stream: 2, Consumer: 3},
				NumDelivered: 1, Timestamp: ts, Stream: "TASKS", Consumer: "workers"},
		},
		{
			name: "V2DomainNoToken",
			give: "$JS.ACK.hub.ACCHASH.TASKS.workers.1.2.3.1700000000123456789.4",
			want: natsjs.MsgMetadata{Sequence: natsjs.SequencePair{Stream: 2, Consumer: 3},
				NumDelivered: 1, NumPending: 4, Timestamp: ts, Stream: "TASKS", Consumer: "workers", Domain: "hub"},
		},
		{name: "NotAck", give: "_INBOX.abc", wantFail: true},
		{name: "TooShort", give: "$JS.ACK.TASKS.workers.1.2.3", wantFail: true},
		{name: "Eight", give: "$JS.ACK.a.b.TASKS.workers.1.2.3.4", wantFail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMeta(tt.give)
			if (err != nil) != tt.wantFail {
				t.Fatalf("parseMeta(%q) error %v, want failure %v", tt.give, err, tt.wantFail)
			}
			if !tt.wantFail && got != tt.want {
				t.Errorf("parseMeta(%q) = %+v, want %+v", tt.give, got, tt.want)
			}
		})
	}
}

func newTestConsumer(window int) *Consumer {
	return &Consumer{
		name:    "S/c",
		cfg:     config{window: window, expiry: 2 * time.Second},
		log:     zap.NewNop(),
		pullAt:  max(1, window/4),
		pending: make(map[*delivery]struct{}),
		bySeq:   make(map[uint64]*delivery),
		queued:  make(chan struct{}, 1),
		freed:   make(chan struct{}, 1),
	}
}

func status(code, desc string, pending string) *nats.Msg {
	m := nats.NewMsg("_INBOX.x")
	m.Header.Set("Status", code)
	m.Header.Set("Description", desc)
	if pending != "" {
		m.Header.Set("Nats-Pending-Messages", pending)
	}
	return m
}

// TestStatusesGiveCreditsBack: a status that ends a pull request gives
// back what it did not deliver; a change of leader ends them all; other
// conflicts call for a backoff.
func TestStatusesGiveCreditsBack(t *testing.T) {
	tests := []struct {
		name        string
		give        *nats.Msg
		wantCredits int
		wantErr     bool
		wantAll     bool
	}{
		{name: "Expired", give: status("408", "Request Timeout", "7"), wantCredits: 13},
		{name: "Heartbeat", give: status("100", "Idle Heartbeat", ""), wantCredits: 20},
		{name: "LeadershipChange", give: status("409", "Leadership Change", ""), wantCredits: 0, wantErr: true, wantAll: true},
		{name: "ConsumerDeleted", give: status("409", "Consumer Deleted", ""), wantCredits: 20, wantErr: true},
		{name: "MaxBytes", give: status("409", "Message Size Exceeds MaxBytes", "5"), wantCredits: 15, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestConsumer(32)
			c.credits = 20
			err := c.take(tt.give)
			if c.credits != tt.wantCredits || (err != nil) != tt.wantErr || errors.Is(err, errAllRequestsEnded) != tt.wantAll {
				t.Errorf("after %s: %d credits, error %v; want %d credits, error %v", tt.give.Header.Get("Status"), c.credits, err, tt.wantCredits, tt.wantErr)
			}
		})
	}
}

// TestExpireForgetsLostStatuses: the credits of pull requests that must
// have ended, whatever became of their statuses, are given back; those of
// requests still running are kept.
func TestExpireForgetsLostStatuses(t *testing.T) {
	c := newTestConsumer(32)
	now := time.Now()
	reqs := []pullRequest{
		{sent: now.Add(-c.cfg.expiry - pullGrace - time.Millisecond), batch: 10}, // over: its 408 was lost
		{sent: now.Add(-c.cfg.expiry), batch: 8},                                 // its 408 may still come
		{sent: now, batch: 6},
	}
	c.credits = 10 + 8 + 6
	reqs = c.expire(reqs, now)
	if len(reqs) != 2 || c.credits != 14 {
		t.Errorf("after expire: %d requests, %d credits; want 2, 14", len(reqs), c.credits)
	}
	c.credits = 3 // most of the live ones came
	reqs = c.expire(reqs, now)
	if len(reqs) != 2 || c.credits != 3 {
		t.Errorf("after expire: %d requests, %d credits; want 2, 3", len(reqs), c.credits)
	}
	if reqs = c.expire(reqs, now.Add(time.Hour)); len(reqs) != 0 || c.credits != 0 {
		t.Errorf("an hour on: %d requests, %d credits; want 0, 0", len(reqs), c.credits)
	}
}

// TestClaimFree: a pull asks for the whole free part of the window, once
// a quarter of it is free; the settle that frees enough signals the loop.
func TestClaimFree(t *testing.T) {
	c := newTestConsumer(8)
	if n := c.claimFree(); n != 8 || c.credits != 8 {
		t.Fatalf("claimFree = %d with %d credits, want 8, 8", n, c.credits)
	}
	if n := c.claimFree(); n != 0 || !c.wantRoom {
		t.Fatalf("claimFree on a full window = %d, wantRoom %v; want 0, true", n, c.wantRoom)
	}
	// One delivery arrives: a credit becomes a pending message; settling it
	// frees one slot, less than a quarter (2): no signal yet.
	ds := make([]*delivery, 3)
	for i := range ds {
		ds[i] = &delivery{msg: &nats.Msg{Reply: "r"}}
		c.pending[ds[i]] = struct{}{}
		c.credits--
	}
	settle := func(d *delivery) {
		c.mu.Lock()
		delete(c.pending, d)
		room := c.roomLocked()
		c.mu.Unlock()
		if room {
			c.freed <- struct{}{}
		}
	}
	settle(ds[0])
	if len(c.freed) != 0 {
		t.Fatal("signalled with one slot free of eight")
	}
	settle(ds[1])
	if len(c.freed) != 1 {
		t.Fatal("not signalled with two slots free of eight")
	}
	if n := c.claimFree(); n != 2 {
		t.Errorf("claimFree = %d, want 2", n)
	}
}
