package workerpool_test

// Round 8: two per-worker resource types whose reflect names print the same
// ("*rand.Rand" of math/rand and of math/rand/v2; "*template.Template" of
// text/template and html/template) are two different types: neither a
// duplicate nor the same value, each opened and closed once per worker.

import (
	"context"
	htmltemplate "html/template"
	randv1 "math/rand"
	randv2 "math/rand/v2"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/fxpool/fxpool/fxpooltest"
	"github.com/fxpool/fxpool/resources"
	"github.com/fxpool/fxpool/workerpool"
	"go.uber.org/fx"
)

type a8SameName struct {
	fx.In
	R1 *randv1.Rand
	R2 *randv2.Rand
	T1 *template.Template
	T2 *htmltemplate.Template
	W  resources.Worker
}

func TestAttack8SameNamedTypesAreDistinctResources(t *testing.T) {
	var mu sync.Mutex
	opened := map[string]int{}
	closed := map[string]int{}
	note := func(m map[string]int, k string) { mu.Lock(); m[k]++; mu.Unlock() }
	rec := fxpooltest.NewRecorder()
	var p *workerpool.Pool[a8SameName]
	app := fxpooltest.New(t,
		workerpool.Provide[a8SameName]("a8same",
			workerpool.Workers(3),
			rec.Option(),
			workerpool.Resources(
				resources.PerWorker(func(w resources.Worker) (*randv1.Rand, func(), error) {
					note(opened, "v1")
					return randv1.New(randv1.NewSource(1)), func() { note(closed, "v1") }, nil
				}),
				resources.PerWorker(func(w resources.Worker) (*randv2.Rand, func(), error) {
					note(opened, "v2")
					return randv2.New(randv2.NewPCG(1, 2)), func() { note(closed, "v2") }, nil
				}),
				resources.PerWorker(func(w resources.Worker) (*template.Template, func(), error) {
					note(opened, "text")
					return template.New("text"), func() { note(closed, "text") }, nil
				}),
				resources.PerWorker(func(r *template.Template) (*htmltemplate.Template, func(), error) {
					note(opened, "html")
					// depends on the text template: must close before it
					return htmltemplate.New("html-of-" + r.Name()), func() { note(closed, "html") }, nil
				}),
			),
		),
		fx.Populate(&p),
	)
	app.RequireStart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 30 {
		if err := p.Do(ctx, func(_ context.Context, d a8SameName) error {
			if d.R1 == nil || d.R2 == nil || d.T1 == nil || d.T2 == nil {
				t.Errorf("worker %d got a nil resource: %+v", d.W.ID, d)
				return nil
			}
			if d.T1.Name() != "text" || d.T2.Name() != "html-of-text" {
				t.Errorf("templates mixed up: text %q, html %q", d.T1.Name(), d.T2.Name())
			}
			_ = d.R1.Intn(10)
			_ = d.R2.IntN(10)
			return nil
		}); err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	app.RequireStop()
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"v1", "v2", "text", "html"} {
		if opened[k] != 3 || closed[k] != 3 {
			t.Errorf("%s: opened %d, closed %d; want 3 and 3", k, opened[k], closed[k])
		}
	}
	rec.Verify(t)
}
