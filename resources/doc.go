// Package resources declares the resources that every worker of a pool
// owns, and opens and closes them in dependency order.
//
// # Declaring
//
// [PerWorker] declares a constructor in the forms fx knows:
//
//	func(deps...) T
//	func(deps...) (T, error)
//	func(deps...) (T, cleanup, error)
//
// where cleanup is func(), func() error or func(context.Context) error. A
// constructor may take a leading [context.Context]: the context of the open,
// which ends when the open is over — for a worker opened by the pool's
// start, when the start returns, whether it succeeded or not. A
// constructor that starts background work gives it a context of its own
// and stops it in its cleanup. A parameter may be an fx.In struct, whose
// fields may carry the optional:"true" and name:"..." tags. A constructor
// may not take fx.Lifecycle (hooks appended while a pool runs never run:
// use a cleanup) nor return a context.Context (nothing could receive it).
//
// A parameter whose type another PerWorker constructor of the same pool
// returns is that worker's own value; [Worker] tells a constructor who it
// serves; every other parameter is taken once from the fx graph, so an
// app-scoped *sql.DB can feed every worker's *sql.Conn.
//
// A T that has a Close() error or Close(context.Context) error method and no
// explicit cleanup is closed automatically, unless the value is nil: a nil
// pointer, a nil interface, or an interface holding a nil pointer is not
// closed.
//
// # Ownership and order
//
// A pool (package workerpool) analyses its declarations when fx.New runs,
// and fx.New reports there a constructor it cannot use
// ([ErrInvalidConstructor]), two constructors of one type ([ErrDuplicate]),
// a name given to two resources ([ErrDuplicateName]) or a cycle ([ErrCycle]),
// naming the pool and the culprits. Nothing opens before the app starts.
//
// Each worker then opens its own set of resources: only those its task
// parameter needs, each after those it depends on. It closes them in
// exactly the reverse order, so a resource closes only after every resource
// of its worker that depends on it. A failed open closes what had opened
// and is reported as an [*OpenError] naming the resource. Panics in
// constructors and cleanups become errors that name the resource.
//
// The machinery that does this — the analysed graph and a worker's open
// set — lives in fxpool's internal packages: a program declares resources
// here and hands them to workerpool.Resources.
package resources
