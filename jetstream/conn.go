package jetstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/fx"
)

// Embedded is the URL that makes [Connect] connect in-process to the server
// that package embedded provides, instead of dialing a URL.
const Embedded = "embedded"

// InProcess is a server that a client can reach without a network:
// package embedded provides one to the app, and [Connect] with [Embedded]
// uses it.
type InProcess interface {
	InProcessConn() (net.Conn, error)
}

// Conn is a connection to NATS with its JetStream context. [Connect]
// provides it; [Dial] makes one outside fx. Its methods are safe for
// concurrent use.
type Conn struct {
	nc *nats.Conn
	js natsjs.JetStream
}

// NATS returns the underlying connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the connection's JetStream context.
func (c *Conn) JetStream() natsjs.JetStream { return c.js }

// Dial connects to url — a NATS URL or a comma-separated list of them —
// or, if url is [Embedded], in-process to srv. opts are nats.go's options;
// by default the connection reconnects without limit. Dial blocks until
// the connection is up or fails.
func Dial(url string, srv InProcess, opts ...nats.Option) (*Conn, error) {
	base := []nats.Option{nats.Name("fxpool"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if url == Embedded {
		if srv == nil {
			return nil, errors.New("jetstream: Connect(Embedded) needs the server of package embedded in the app")
		}
		base = append(base, nats.InProcessServer(srv))
		url = ""
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("jetstream: connect: %w", err)
	}
	js, err := natsjs.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Conn{nc: nc, js: js}, nil
}

// Close flushes what the connection has buffered — acks included — within
// ctx (or ten seconds, if ctx has no deadline), then closes it. It returns the flush's error.
func (c *Conn) Close(ctx context.Context) error {
	var err error
	if !c.nc.IsClosed() {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
		}
		if err = c.nc.FlushWithContext(ctx); err != nil {
			err = fmt.Errorf("jetstream: flush before close: %w", err)
		}
	}
	c.nc.Close()
	return err
}

type connectParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	Server    InProcess `optional:"true"`
}

// Connect provides a *[Conn] to the app: connected to url in its OnStart
// hook, flushed and closed in its OnStop hook. With url [Embedded] it
// connects in-process to the server of package embedded, which must be in
// the app; that server stops after the connection.
func Connect(url string, opts ...nats.Option) fx.Option {
	return fx.Provide(func(p connectParams) *Conn {
		c := &Conn{}
		p.Lifecycle.Append(fx.Hook{
			OnStart: func(context.Context) error {
				conn, err := Dial(url, p.Server, opts...)
				if err != nil {
					return err
				}
				*c = *conn
				return nil
			},
			OnStop: func(ctx context.Context) error {
				if c.nc == nil {
					return nil
				}
				return c.Close(ctx)
			},
		})
		return c
	})
}
