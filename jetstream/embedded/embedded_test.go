package embedded_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestModuleInProcess: by default the server does not listen; a connection
// reaches it in-process, and the app stops the connection, then the server.
func TestModuleInProcess(t *testing.T) {
	var srv *embedded.Server
	var conn *jetstream.Conn
	app := fxtest.New(t,
		fx.NopLogger,
		embedded.Module(t.TempDir()),
		jetstream.Connect(jetstream.Embedded),
		fx.Populate(&srv, &conn),
	)
	app.RequireStart()
	if url := srv.ClientURL(); url != "" {
		t.Errorf("ClientURL() = %q: the server listens by default", url)
	}
	if _, err := conn.JetStream().AccountInfo(t.Context()); err != nil {
		t.Errorf("JetStream not enabled: %v", err)
	}
	app.RequireStop()
	if !conn.NATS().IsClosed() {
		t.Error("the connection is still open after the app stopped")
	}
	if srv.NATS().Running() {
		t.Error("the server still runs after the app stopped")
	}
}

// TestListen: with Listen, other processes connect by URL, over loopback
// TCP.
func TestListen(t *testing.T) {
	srv, err := embedded.New(t.TempDir(), embedded.Listen("127.0.0.1:0"), embedded.SyncAlways())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if srv.ClientURL() == "" {
		t.Fatal("no client URL")
	}
	var conn *jetstream.Conn
	app := fxtest.New(t, fx.NopLogger, jetstream.Connect(srv.ClientURL()), fx.Populate(&conn))
	app.RequireStart()
	defer app.RequireStop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := conn.JetStream().AccountInfo(ctx); err != nil {
		t.Error(err)
	}
}

// TestOptions: invalid options are errors, and options name themselves.
func TestOptions(t *testing.T) {
	tests := []struct {
		give embedded.Option
		want string
	}{
		{embedded.Listen("nowhere"), `embedded.Listen("nowhere")`},
		{embedded.Listen("127.0.0.1:99999"), `embedded.Listen("127.0.0.1:99999")`},
		{embedded.ServerOptions(nil), "embedded.ServerOptions(...)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.give.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if _, err := embedded.New(t.TempDir(), tt.give); err == nil {
				t.Error("no error")
			}
		})
	}
	if _, err := embedded.New(""); err == nil {
		t.Error("New with no folder: no error")
	}
}

// TestConnectEmbeddedNeedsServer: Connect(Embedded) without the module is
// an error at start, not a connection to some default URL.
func TestConnectEmbeddedNeedsServer(t *testing.T) {
	app := fx.New(fx.NopLogger, jetstream.Connect(jetstream.Embedded), fx.Invoke(func(*jetstream.Conn) {}))
	if err := app.Start(t.Context()); err == nil {
		t.Error("started without a server")
		_ = app.Stop(t.Context())
	}
}

// TestListenBusyAddress: a server that cannot listen on the address it is
// given fails with the server's own error, naming the address and the
// cause; it said only "server not ready after 10s", after ten seconds.
func TestListenBusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	srv, err := embedded.New(t.TempDir(), embedded.Listen(addr))
	if err == nil {
		srv.Shutdown()
		t.Fatalf("New listening on %s, which is in use: no error", addr)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("New = %v, want an error naming %s and that it is in use", err, addr)
	}
}
