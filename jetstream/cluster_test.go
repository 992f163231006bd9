package jetstream_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxpool/fxpool/jetstream"
	"github.com/fxpool/fxpool/jetstream/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// clusterNode is one server of a test cluster.
type clusterNode struct {
	name string
	srv  *embedded.Server
	once sync.Once
}

func (n *clusterNode) shutdown() { n.once.Do(n.srv.Shutdown) }

// startCluster starts a JetStream cluster of size embedded servers on
// loopback, each with its own store folder, client port and cluster port,
// routed to each other, and shuts them down at the end of the test. It
// returns once the cluster has a meta leader.
func startCluster(t *testing.T, size int) ([]*clusterNode, string) {
	t.Helper()
	// The cluster ports must be known before the servers start: each
	// server's routes name all of them.
	ports := make([]int, size)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	nodes := make([]*clusterNode, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range nodes {
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i)}
		wg.Go(func() {
			nodes[i].srv, errs[i] = embedded.New(t.TempDir(), embedded.Listen("127.0.0.1:0"),
				embedded.ServerOptions(func(o *server.Options) {
					o.ServerName = nodes[i].name
					o.Cluster.Name = "fxpool"
					o.Cluster.Host = "127.0.0.1"
					o.Cluster.Port = ports[i]
					o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
				}))
		})
	}
	wg.Wait()
	var urls []string
	for i, n := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %s: %v", n.name, errs[i])
		}
		t.Cleanup(n.shutdown)
		urls = append(urls, n.srv.ClientURL())
	}
	url := strings.Join(urls, ",")

	conn := dialURL(t, url)
	waitFor(t, time.Minute, "a JetStream meta leader", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := conn.JetStream().AccountInfo(ctx)
		return err == nil
	})
	return nodes, url
}

// dialURL connects to url, and closes the connection at the end of the
// test.
func dialURL(t *testing.T, url string) *jetstream.Conn {
	t.Helper()
	conn, err := jetstream.Dial(url, nil, nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// settledInCluster is settledAll for a cluster whose leaders may be moving:
// a failed look is "not yet".
func settledInCluster(js natsjs.JetStream, ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, testStream, testConsumer)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// TestClusterSurvivesLeaderLoss: two apps consume one consumer of a stream
// with three replicas on a three-node cluster; the node that leads the
// stream shuts down while both apps hold messages un-settled. Every
// message is still handled at least once, none is lost from the stream,
// and at the end the consumer has nothing pending: every message acked.
// The clients reconnect on their own.
func TestClusterSurvivesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	const n = 2000
	nodes, url := startCluster(t, 3)
	admin := dialURL(t, url)
	js := admin.JetStream()
	waitFor(t, time.Minute, "a stream with three replicas", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: testStream, Subjects: []string{"tasks.>"}, Replicas: 3})
		return err == nil
	})
	if _, err := js.CreateConsumer(t.Context(), testStream, natsjs.ConsumerConfig{
		Durable:       testConsumer,
		AckPolicy:     natsjs.AckExplicitPolicy,
		AckWait:       2 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, 0, n)

	// Once a third is handled, the handlers wait for the node to go: both
	// apps then hold full windows un-settled when it does.
	s := newSeen()
	gate := make(chan struct{})
	handler := func(ctx context.Context, _ worker, i int) error {
		if s.add(i) > n/3 {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	var consumers []*jetstream.Consumer
	for range 2 {
		conn := dialURL(t, url)
		consumers = append(consumers, consume(t, conn, startPool(t, 4), handler, jetstream.FetchExpiry(time.Second)))
	}
	waitFor(t, time.Minute, "a third handled", func() bool { return s.distinct() > n/3 })

	stream, err := js.Stream(t.Context(), testStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	leader := info.Cluster.Leader
	for _, node := range nodes {
		if node.name == leader {
			node.shutdown()
		}
	}
	t.Logf("shut down %s, the stream's leader, with %d of %d handled", leader, s.distinct(), n)
	close(gate)

	waitFor(t, 2*time.Minute, "every message handled and acked", func() bool {
		return s.distinct() == n && settledInCluster(js, t.Context())
	})
	lost, dups := s.check(n)
	if len(lost) > 0 {
		t.Errorf("lost %d messages: %v", len(lost), lost[:min(len(lost), 20)])
	}
	info, err = stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n || info.Cluster.Leader == leader {
		t.Errorf("after the loss of %s: %d messages in the stream, led by %q; want %d, another leader", leader, info.State.Msgs, info.Cluster.Leader, n)
	}
	var acked uint64
	for i, c := range consumers {
		st := c.Stats()
		acked += st.Acked
		t.Logf("app %d: %+v", i, st)
	}
	if acked < n {
		t.Errorf("%d acks in all, want at least %d", acked, n)
	}
	t.Logf("%d messages, %d duplicates", n, dups)
}
