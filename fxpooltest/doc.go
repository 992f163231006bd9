// Package fxpooltest lets an app's own tests prove fxpool's guarantees of
// the app's own pools: that every per-worker resource that opened closed
// exactly once, in reverse order, before the app-scoped resources it used,
// that rollbacks close what had opened, and that no goroutine outlives the
// app. It is to fxpool what fxtest is to fx and zaptest/observer to zap.
//
// # Running an app
//
// [New] makes an fx app under a test's t; [App.RequireStart] starts it and
// [App.RequireStop] stops it, then checks with goleak that every goroutine
// started since New has ended. Failures are reported through t (see [TB]).
// A test that expects a start or stop to fail calls the embedded fx.App's
// Start and Stop and then [App.VerifyNoLeaks]. fx's own events go to
// t.Logf; to see the pools' logs there too, supply a logger to the app:
// fx.Supply(zaptest.NewLogger(t)).
//
// # Recording opens and closes
//
// A [Recorder] collects the pools' lifecycle events — give
// [Recorder.Option] to each pool — and [Recorder.Verify] checks them once
// the app has stopped: each resource that opened closed exactly once, none
// that failed to open was closed, within each worker's generation the
// closes ran in the reverse order of the opens, and each app-scoped close
// noted with [Recorder.Mark] came after the pools had stopped. The
// recorder reads only events: the constructors stay the user's own.
//
// # Injecting faults
//
// [Inject] wraps a constructor given to resources.PerWorker so that its
// nth open or close fails, panics or hangs until its context ends
// ([OnOpen], [OnClose]), to test the rollback paths of the app: a start
// that fails halfway, a rebuild that fails, a close that fails or is stuck.
// Every fault wraps [ErrInjected].
//
// # Controlling time
//
// A [Clock] is a pool clock that moves only when the test calls
// [Clock.Add]: for MaxWorkerAge recycling, restart backoff and Elastic
// idling. [Clock.WaitTimers] waits until the pool is waiting on it.
//
// # Who owns what
//
// fxpooltest starts no goroutine of its own. The app's goroutines belong
// to the app and end with its stop; a Recorder and a Clock are plain
// values, safe for concurrent use, that the pools call into. A [Hang]
// fault blocks the goroutine that opens or closes until that open's or
// close's context ends, as the pool gives it; if that context never ends,
// the goroutine stays blocked, and the leak check reports it, as it should.
package fxpooltest
