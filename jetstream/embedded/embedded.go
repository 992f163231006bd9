// Package embedded runs a NATS server with JetStream inside the process, for
// the consumers of package jetstream: no server to deploy, its store in a
// folder of the app's choosing.
//
// # Who owns what
//
// [Module] provides a *[Server] to an fx app: it starts in the server's
// OnStart hook and shuts down, and is waited for, in its OnStop hook.
// jetstream.Connect(jetstream.Embedded) depends on it, so the server's hooks
// come first: it starts before every connection to it and stops after all of
// them, and so after every consumer and pool that uses them. [New] starts
// one outside fx; [Server.Shutdown] stops it.
//
// By default the server has no listener at all: clients reach it in-process
// (nats.InProcessServer), and nothing on the machine can connect to it.
// [Listen] opens a TCP port, for other processes.
//
// # Durability
//
// The store is a folder of files. A message is acknowledged to its publisher
// once the server has written it to the store's files, not once it is on the
// disk: the operating system writes it back soon after, and the server syncs
// its files every two minutes. A crash of the process — even kill -9 — loses
// nothing, since the kernel holds what was written; a power loss or a kernel
// crash can lose what was published, acked or Nak'd in the last two minutes.
// [SyncAlways] syncs every write before it is acknowledged, at a cost in
// throughput, and closes that window.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/fx"
)

// An Option configures a [Server].
type Option interface {
	apply(*server.Options) error
	String() string
}

type listenOption string

// Listen makes the server listen on addr ("127.0.0.1:4222"; port 0 picks a
// free one), so that other processes can connect to it by [Server.ClientURL].
// By default the server does not listen.
func Listen(addr string) Option { return listenOption(addr) }

func (o listenOption) apply(opts *server.Options) error {
	host, port, err := net.SplitHostPort(string(o))
	if err != nil {
		return fmt.Errorf("embedded: %v: %w", o, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("embedded: %v: bad port", o)
	}
	if p == 0 {
		p = server.RANDOM_PORT
	}
	opts.DontListen, opts.Host, opts.Port = false, host, p
	return nil
}

func (o listenOption) String() string { return fmt.Sprintf("embedded.Listen(%q)", string(o)) }

type syncAlways struct{}

// SyncAlways makes the server sync its store to disk on every write: see
// Durability in the package documentation.
func SyncAlways() Option { return syncAlways{} }

func (syncAlways) apply(opts *server.Options) error { opts.SyncAlways = true; return nil }
func (syncAlways) String() string                   { return "embedded.SyncAlways()" }

type serverOptions func(*server.Options)

// ServerOptions gives f the server's options after every other option: an
// escape hatch to the whole of nats-server's configuration (limits, a
// cluster, accounts).
func ServerOptions(f func(*server.Options)) Option { return serverOptions(f) }

func (o serverOptions) apply(opts *server.Options) error {
	if o == nil {
		return errors.New("embedded: ServerOptions(nil)")
	}
	o(opts)
	return nil
}

func (serverOptions) String() string { return "embedded.ServerOptions(...)" }

// Server is a running embedded NATS server with JetStream.
type Server struct {
	s *server.Server
}

// New starts a server with JetStream, its store in dir, and waits until it
// takes connections, up to ten seconds. Stop it with [Server.Shutdown].
func New(dir string, opts ...Option) (*Server, error) {
	if dir == "" {
		return nil, errors.New("embedded: no store folder")
	}
	sopts := &server.Options{
		ServerName: "fxpool-embedded",
		JetStream:  true,
		StoreDir:   dir,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
	}
	// ServerOptions last, whatever the order they were given in.
	var late []Option
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("embedded: nil option")
		}
		if _, ok := o.(serverOptions); ok {
			late = append(late, o)
			continue
		}
		if err := o.apply(sopts); err != nil {
			return nil, err
		}
	}
	for _, o := range late {
		if err := o.apply(sopts); err != nil {
			return nil, err
		}
	}
	s, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	// The server logs nothing (NoLog), but its fatal errors, such as an
	// address it cannot listen on, are kept: without them, a server that
	// failed to listen is only one that is never ready.
	fatal := &fatalLog{}
	s.SetLoggerV2(fatal, false, false, false)
	s.Start()
	for deadline := time.Now().Add(10 * time.Second); !s.ReadyForConnections(50 * time.Millisecond); {
		err := fatal.get()
		if err == nil && time.Now().Before(deadline) {
			continue
		}
		s.Shutdown()
		s.WaitForShutdown()
		if err != nil {
			return nil, fmt.Errorf("embedded: %w", err)
		}
		return nil, errors.New("embedded: server not ready after 10s")
	}
	return &Server{s: s}, nil
}

// fatalLog is the server's logger: it keeps the first fatal error, and
// drops everything else.
type fatalLog struct {
	mu  sync.Mutex
	err error
}

func (l *fatalLog) get() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf(format, v...)
	}
}

func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

// InProcessConn returns a connection to the server without a network, for
// nats.InProcessServer.
func (s *Server) InProcessConn() (net.Conn, error) { return s.s.InProcessConn() }

// ClientURL returns the URL other processes connect to, if the server
// listens (see [Listen]); "" otherwise.
func (s *Server) ClientURL() string {
	if s.s.Addr() == nil {
		return ""
	}
	return s.s.ClientURL()
}

// NATS returns the nats-server itself.
func (s *Server) NATS() *server.Server { return s.s }

// Shutdown stops the server — its connections first — and waits until it
// has stopped and its store is closed.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

// Module provides a *[Server], with its store in dir, to an fx app, and the
// [jetstream.InProcess] that jetstream.Connect(jetstream.Embedded) connects
// through. The server starts in its OnStart hook and shuts down in its
// OnStop hook, after everything that connects to it: see the package
// documentation.
func Module(dir string, opts ...Option) fx.Option {
	return fx.Module("embedded",
		fx.Provide(
			func(lc fx.Lifecycle) *Server {
				srv := &Server{}
				lc.Append(fx.Hook{
					OnStart: func(context.Context) error {
						s, err := New(dir, opts...)
						if err != nil {
							return err
						}
						*srv = *s
						return nil
					},
					OnStop: func(context.Context) error {
						if srv.s != nil {
							srv.Shutdown()
						}
						return nil
					},
				})
				return srv
			},
			func(s *Server) jetstream.InProcess { return s },
		),
	)
}
