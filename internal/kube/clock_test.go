package kube

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// The rotation's times are the API server's, never this machine's (the ninth attack on the traffic instrument: in
// the test cluster both clocks are one, so a Now that read the local clock passed every other test): against a
// server whose clock runs 3 hours ahead, Connect's Now is 3 hours ahead, before and after a request.
func TestNowFollowsTheAPIServersClock(t *testing.T) {
	const ahead = 3 * time.Hour
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(ahead).UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/version" {
			_, _ = w.Write([]byte(`{"major":"1","minor":"37","gitVersion":"v1.37.2"}`))
			return
		}
		_, _ = w.Write([]byte(`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s","namespace":"ns"}}`))
	}))
	defer server.Close()
	c, err := Connect(&rest.Config{Host: server.URL}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		now, err := c.Now(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if off := time.Until(now); off < ahead-2*time.Second || off > ahead+2*time.Second {
			t.Fatalf("%s: Now is %s from this machine's clock, want the server's %s", when, off.Round(time.Second), ahead)
		}
	}
	check("before any request (Now asks the server)")
	if _, err := c.Secret(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	check("after a request")
}
