module github.com/fxpool/fxpool/cmd/fxsum

go 1.26.0

require (
	github.com/fxpool/fxpool v0.0.0-20261130023435-7e716cc08e1c
	github.com/fxpool/fxpool/jetstream v0.0.0-20261130044147-a59294cc7487
	github.com/nats-io/nats.go v1.55.0
	github.com/schollz/progressbar/v3 v3.19.1
	github.com/zeebo/blake3 v0.2.4
	go.uber.org/fx v1.24.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	golang.org/x/term v0.48.0
	modernc.org/sqlite v1.62.0
)
