package jetstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// The pull loop sends its own pull requests, on one subscription that lives
// as long as the loop, instead of nats.go's Fetch, which subscribes and
// unsubscribes an inbox, and runs a goroutine, for every pull, and can have
// only one pull in progress at a time. Here a pull request for the free
// part of the window goes out as soon as enough of it is free, while the
// messages of the earlier requests are still coming or being handled.
//
// The loop counts credits: the messages asked for and not yet received,
// nor given up by the server. A request ends when its last message
// arrives, or with a status (408 when it expires) that says how many it
// did not deliver (Nats-Pending-Messages). Un-settled messages plus credits
// never exceed the window. A status can be lost — a reconnect drops the
// requests of the old connection — so no credit outlives the requests
// sent in the last FetchExpiry plus a grace: every request has ended by
// then, one way or the other.

// pullGrace is how long after its expiry a pull request's status may
// still arrive.
const pullGrace = time.Second

// pullRequest is a pull request in progress, as far as the loop knows.
type pullRequest struct {
	sent  time.Time
	batch int
}

// Reply bodies of the JetStream ack protocol.
var (
	ackBody        = []byte("+ACK")
	inProgressBody = []byte("+WPI")
)

func nakBody(delay time.Duration) []byte {
	return fmt.Appendf(nil, `-NAK {"delay": %d}`, max(delay, time.Nanosecond).Nanoseconds())
}

func termBody(reason string) []byte { return []byte("+TERM " + reason) }

// apiPrefix is the subject prefix of js's API requests.
func apiPrefix(js natsjs.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return natsjs.DefaultAPIPrefix
}

// pullLoop asks for the free part of the window, again and again, until
// the stop; then it waits until every request in progress has ended, so
// that no message the server sends is left un-settled, and hands back
// what they bring.
func (c *Consumer) pullLoop(sub *nats.Subscription, msgs chan *nats.Msg) {
	defer close(c.loopDone)
	var (
		reqs    []pullRequest
		stop    = c.stopPull
		retry   = c.cfg.backoffMin
		waitC   <-chan time.Time // the retry's timer, while it runs
		expires = time.NewTicker(max(c.cfg.expiry/2, 50*time.Millisecond))
	)
	defer expires.Stop()
	for {
		if stop != nil && waitC == nil {
			if n := c.claimFree(); n > 0 {
				if err := c.request(n); err != nil {
					c.returnCredits(n)
					c.log.Warn("pull request failed; retrying", zap.Error(err), zap.Duration("in", retry))
					waitC = time.After(retry)
					retry = min(2*retry, 5*time.Second)
				} else {
					reqs = append(reqs, pullRequest{sent: time.Now(), batch: n})
					retry = c.cfg.backoffMin
				}
				continue
			}
		}
		if stop == nil && c.outstanding() == 0 {
			break
		}
		select {
		case m := <-msgs:
			if err := c.take(m); err != nil {
				c.log.Warn("pull ended by the server; retrying", zap.Error(err), zap.Duration("in", retry))
				if errors.Is(err, errAllRequestsEnded) {
					reqs = reqs[:0]
				}
				if waitC == nil {
					waitC = time.After(retry)
					retry = min(2*retry, 5*time.Second)
				}
			}
		case <-c.freed:
		case <-waitC:
			waitC = nil
		case <-stop:
			stop = nil
		case now := <-expires.C:
			reqs = c.expire(reqs, now)
		}
	}
	_ = sub.Unsubscribe()
	// Nothing is asked for any more; hand back whatever came regardless.
	for {
		select {
		case m := <-msgs:
			_ = c.take(m)
		default:
			return
		}
	}
}

// claimFree returns how many messages to ask for — the free part of the
// window, once at least a quarter of it is free — and counts them as
// credits. When there are not enough, the next settle that frees them
// signals freed.
func (c *Consumer) claimFree() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	free := c.cfg.window - len(c.pending) - c.credits
	if free < c.pullAt {
		c.wantRoom = true
		return 0
	}
	c.wantRoom = false
	c.credits += free
	return free
}

// roomLocked reports whether the pull loop waits for room and has it now,
// and if so, ends its wait: the caller, holding c.mu, signals freed.
func (c *Consumer) roomLocked() bool {
	if !c.wantRoom || c.cfg.window-len(c.pending)-c.credits < c.pullAt {
		return false
	}
	c.wantRoom = false
	return true
}

func (c *Consumer) returnCredits(n int) {
	c.mu.Lock()
	c.credits = max(0, c.credits-n)
	c.mu.Unlock()
}

func (c *Consumer) outstanding() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.credits
}

// request sends one pull request for n messages, which expires after
// FetchExpiry.
func (c *Consumer) request(n int) error {
	body := fmt.Appendf(c.reqBuf[:0], `{"batch":%d,"expires":%d}`, n, c.cfg.expiry.Nanoseconds())
	c.reqBuf = body
	return c.nc.PublishRequest(c.nextSubject, c.inbox, body)
}

// expire forgets the requests that must have ended by now, and with them
// any credit that their lost statuses would have given back.
func (c *Consumer) expire(reqs []pullRequest, now time.Time) []pullRequest {
	i, live := 0, 0
	for _, r := range reqs {
		if now.Sub(r.sent) < c.cfg.expiry+pullGrace {
			reqs[i] = r
			i++
			live += r.batch
		}
	}
	reqs = reqs[:i]
	c.mu.Lock()
	lost := c.credits - live
	c.credits = min(c.credits, live)
	c.mu.Unlock()
	if lost > 0 {
		c.log.Debug("pull requests ended without a word", zap.Int("credits", lost))
	}
	return reqs
}

var errAllRequestsEnded = errors.New("jetstream: the consumer's leader changed: every pull request ended")

// take handles what arrives on the subscription: a message, or a status
// that ends a pull request. It returns an error for a status that calls for
// a backoff.
func (c *Consumer) take(m *nats.Msg) error {
	status := ""
	if len(m.Data) == 0 && len(m.Header) > 0 {
		status = m.Header.Get("Status")
	}
	if status == "" {
		c.receive(m)
		return nil
	}
	if status == "100" { // heartbeat or flow control; never asked for
		return nil
	}
	desc := m.Header.Get("Description")
	left, err := strconv.Atoi(m.Header.Get("Nats-Pending-Messages"))
	switch {
	case err == nil:
		c.returnCredits(left)
	case status == "409" && strings.Contains(strings.ToLower(desc), "leadership change"):
		// The old leader ended every request; their statuses say nothing
		// of what they did not deliver.
		c.mu.Lock()
		c.credits = 0
		c.mu.Unlock()
		return errAllRequestsEnded
	}
	switch status {
	case "408", "404":
		return nil // expired, or nothing to deliver
	}
	return fmt.Errorf("jetstream: consumer %s: status %s %s", c.name, status, desc)
}

// parseMeta reads a delivery's metadata from its ack subject:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>[.<token>...]
func parseMeta(reply string) (natsjs.MsgMetadata, error) {
	var meta natsjs.MsgMetadata
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return meta, fmt.Errorf("jetstream: %q is not an ack subject", reply)
	}
	var tok [11]string
	n := 0
	for n < len(tok) {
		var found bool
		tok[n], rest, found = strings.Cut(rest, ".")
		n++
		if !found {
			break
		}
	}
	var f []string // stream, consumer, delivered, sseq, cseq, tm, pending
	switch {
	case n == 7 && rest == "":
		f = tok[:7]
	case n >= 9:
		meta.Domain = tok[0]
		if meta.Domain == "_" {
			meta.Domain = ""
		}
		f = tok[2:9]
	default:
		return meta, fmt.Errorf("jetstream: %q is not an ack subject", reply)
	}
	meta.Stream, meta.Consumer = f[0], f[1]
	meta.NumDelivered = num(f[2])
	meta.Sequence.Stream, meta.Sequence.Consumer = num(f[3]), num(f[4])
	meta.Timestamp = time.Unix(0, int64(num(f[5])))
	meta.NumPending = num(f[6])
	return meta, nil
}

// num reads a decimal number of an ack subject; anything else is 0.
func num(s string) uint64 {
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n
}
