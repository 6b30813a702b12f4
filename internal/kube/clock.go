package kube

import (
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// serverClock remembers the API server's time from the Date header of every response, so that the rotation's
// deadlines (retire-after) follow the API server's clock, not the operator's laptop, at no extra request.
type serverClock struct {
	mu        sync.Mutex
	date      time.Time // from the latest Date header
	localSeen time.Time // local monotonic time when it was seen
}

// now returns the server time: the latest Date plus the local time elapsed since it was seen.
func (c *serverClock) now() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.date.IsZero() {
		return time.Time{}, false
	}
	return c.date.Add(time.Since(c.localSeen)), true
}

type clockTransport struct {
	next  http.RoundTripper
	clock *serverClock
}

func (t *clockTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			t.clock.mu.Lock()
			if d.After(t.clock.date) || t.clock.date.IsZero() {
				t.clock.date, t.clock.localSeen = d, time.Now()
			}
			t.clock.mu.Unlock()
		}
	}
	return resp, err
}

// withServerClock returns a copy of cfg whose responses feed clock.
func withServerClock(cfg *rest.Config, clock *serverClock) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &clockTransport{next: rt, clock: clock} })
	return cfg
}
