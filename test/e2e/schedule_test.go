package e2e

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// e2eSlots is how many tests run at once. Most e2e tests wait (token TTLs, rollouts, hook Jobs) far more than they
// compute: 4 at once keep 2 cores busy.
const e2eSlots = 4

// gatherWindow is how long the gate collects arrivals before it grants the first slots: go test releases every
// parallel test at once, and their subtests arrive a moment later, when their parents' bodies have run.
const gatherWindow = 2 * time.Second

// parallel runs t in parallel with the other tests that call it, e2eSlots at a time, the longest expected first.
// go test starts parallel tests in no set order, and a 10-minute test that starts last holds the whole suite
// (the suite took 37 minutes where its work fits in under 30): this gate orders them by cost, the test's measured
// duration on a quiet 2-core machine, and go test's own -parallel is set high (Makefile) so that only the gate
// throttles. Every leaf test that runs in parallel calls it instead of t.Parallel.
func parallel(t *testing.T, cost time.Duration) {
	t.Helper()
	t.Parallel()
	slots.acquire(cost)
	t.Cleanup(slots.release)
}

var slots = &gate{free: e2eSlots}

// gate grants its free slots to the waiting tests with the highest cost once gatherWindow has passed since the
// first arrival.
type gate struct {
	mu      sync.Mutex
	free    int
	open    bool
	started bool
	waiting []waiter
}

type waiter struct {
	cost  time.Duration
	ready chan struct{}
}

func (g *gate) acquire(cost time.Duration) {
	w := waiter{cost: cost, ready: make(chan struct{})}
	g.mu.Lock()
	g.waiting = append(g.waiting, w)
	if !g.started {
		g.started = true
		time.AfterFunc(gatherWindow, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.open = true
			g.grant()
		})
	}
	g.grant()
	g.mu.Unlock()
	<-w.ready
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.free++
	g.grant()
}

// grant hands free slots to the costliest waiters; g.mu is held.
func (g *gate) grant() {
	if !g.open {
		return
	}
	sort.SliceStable(g.waiting, func(i, j int) bool { return g.waiting[i].cost > g.waiting[j].cost })
	for g.free > 0 && len(g.waiting) > 0 {
		close(g.waiting[0].ready)
		g.waiting = g.waiting[1:]
		g.free--
	}
}
