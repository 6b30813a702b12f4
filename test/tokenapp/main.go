// Command tokenapp is the test stand-in for the ticket's applications: run as a signer it is the jobs-manager,
// issuing HMAC-SHA256 tokens with the key named by `active`; run as a verifier it is the requests-proxy, accepting
// a token whose kid names a key it knows and whose exp has not passed (within a skew). It reads the keyring the way
// the chart gives it: from the environment once at start (--keys=env), or from the files of a Secret volume,
// re-read when they change (--keys=dir:PATH). It runs on the runner node of the cluster-in-a-box (package
// testcluster), which honours RUNNER_BIND_IP (bind address) and RUNNER_ROOT (where volumes are mounted).
//
// Endpoints: signer GET /token → the token; verifier POST /verify (the token as body) → 200 "ok <kid>" or 401
// "<reason> ..."; both GET /readyz and GET /metrics (where the keys come from, the kids and the active one, and
// counters; never key bytes).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tracebloc/helm-rotate-key/test/tokenapp/token"
)

type app struct {
	role  string
	name  string
	ttl   time.Duration
	skew  time.Duration
	ahead time.Duration
	// started makes token ids unique across restarts of the process in one pod.
	started string
	// source is where the keys come from, "env" or "dir" (the driver waits only for the apps that re-read).
	source string
	store  keyStore
	issued atomic.Int64
	serial atomic.Int64
	ok     atomic.Int64
	// refused counts 401s by reason.
	refused  map[error]*atomic.Int64
	draining atomic.Bool
}

func main() {
	role := flag.String("role", "", "signer or verifier")
	keys := flag.String("keys", "env", "where the keys come from: env (read once at start; --env-prefix) or dir:PATH (a Secret volume, re-read on change)")
	prefix := flag.String("env-prefix", "", "with --keys=env: the prefix of the keyring's variables (envFrom's prefix)")
	listen := flag.String("listen", ":8080", "address to serve on; an empty host means RUNNER_BIND_IP when set")
	ttlFlag := flag.String("ttl", "$TOKEN_TTL_SECONDS", "token lifetime in seconds (signer)")
	skew := flag.Duration("skew", 2*time.Second, "accept a token this long past its exp (verifier)")
	reload := flag.Duration("reload-every", time.Second, "with --keys=dir: how often the files are checked for a change")
	// 15 s, as a well-behaved server's preStop sleep: the EndpointSlice controller and every client take time to
	// stop sending to a pod that is going away (on a loaded 2-core machine several seconds).
	drain := flag.Duration("drain", 15*time.Second, "after SIGTERM, keep serving this long (not ready) before exiting")
	ahead := flag.Duration("clock-ahead", 0, "the signer's clock runs this far ahead (a clock skew between machines): its tokens' iat and exp move with it")
	style := flag.String("naming", "key.vN", "the keyring's naming style: key.vN or vN (data keys of the other style are not keys)")
	flag.Parse()
	if *style != "key.vN" && *style != "vN" {
		log.Fatalf("tokenapp: --naming %q: want key.vN or vN", *style)
	}
	if err := run(naming(*style), *role, *keys, *prefix, *listen, *ttlFlag, *skew, *reload, *drain, *ahead); err != nil {
		log.Fatalf("tokenapp: %v", err)
	}
}

func run(style naming, role, keys, prefix, listen, ttlFlag string, skew, reload, drain, ahead time.Duration) error {
	if role != "signer" && role != "verifier" {
		return fmt.Errorf("--role must be signer or verifier, not %q", role)
	}
	a := &app{role: role, name: os.Getenv("POD_NAME"), skew: skew, ahead: ahead, refused: map[error]*atomic.Int64{},
		started: strconv.FormatInt(time.Now().UnixNano(), 36)}
	if a.name == "" {
		a.name, _ = os.Hostname()
	}
	for _, e := range []error{token.ErrMalformed, token.ErrUnknownKid, token.ErrBadSignature, token.ErrExpired} {
		a.refused[e] = &atomic.Int64{}
	}
	if role == "signer" {
		secs, err := strconv.Atoi(os.ExpandEnv(ttlFlag))
		if err != nil || secs <= 0 {
			return fmt.Errorf("--ttl %q: want a positive number of seconds (TOKEN_TTL_SECONDS unset?)", ttlFlag)
		}
		a.ttl = time.Duration(secs) * time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	switch {
	case keys == "env":
		a.source = "env"
		a.install(style.envKeys(prefix), "env")
	case strings.HasPrefix(keys, "dir:"):
		dir := filepath.Join(os.Getenv("RUNNER_ROOT"), strings.TrimPrefix(keys, "dir:"))
		set, err := style.dirKeys(dir)
		if err != nil {
			return fmt.Errorf("reading the keys: %w", err)
		}
		a.source = "dir"
		a.install(set, dir)
		go a.watch(ctx, style, dir, reload)
	default:
		return fmt.Errorf("--keys %q: want env or dir:PATH", keys)
	}
	if host, port, err := net.SplitHostPort(listen); err == nil && host == "" && os.Getenv("RUNNER_BIND_IP") != "" {
		listen = net.JoinHostPort(os.Getenv("RUNNER_BIND_IP"), port)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Printf("tokenapp: %s %s serving on %s", role, a.name, ln.Addr())
	<-ctx.Done()
	// As a well-behaved app behind a Service: stop reporting ready, keep answering while the endpoints catch up.
	a.draining.Store(true)
	log.Printf("tokenapp: SIGTERM, draining for %s", drain)
	time.Sleep(drain)
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func (a *app) install(s *keySet, from string) {
	if a.store.swap(s) {
		log.Printf("tokenapp: keys from %s: kids %v, active %q", from, s.kids(), s.active)
	}
}

// watch re-reads the volume, as an app that watches its key files does; a half-written update is never seen
// because the kubelet (and the runner) swap the whole directory at once.
func (a *app) watch(ctx context.Context, style naming, dir string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s, err := style.dirKeys(dir); err == nil {
				a.install(s, dir)
			} else {
				log.Printf("tokenapp: re-reading the keys: %v", err)
			}
		}
	}
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if msg := a.notReady(); msg != "" {
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		s := a.store.get()
		fmt.Fprintf(w, "role %s\npod %s\nkeys %s\nkids %s\nactive %s\nissued %d\naccepted %d\n", a.role, a.name, a.source, strings.Join(s.kids(), ","), s.active, a.issued.Load(), a.ok.Load())
		for e, n := range a.refused {
			fmt.Fprintf(w, "refused_%s %d\n", e, n.Load())
		}
	})
	if a.role == "signer" {
		mux.HandleFunc("GET /token", a.sign)
	} else {
		mux.HandleFunc("POST /verify", a.verify)
	}
	return mux
}

func (a *app) notReady() string {
	s := a.store.get()
	switch {
	case a.draining.Load():
		return "terminating"
	case len(s.keys) == 0:
		return "no keys"
	case a.role == "signer" && s.keys[s.active] == nil:
		return fmt.Sprintf("active %q names no key", s.active)
	}
	return ""
}

func (a *app) sign(w http.ResponseWriter, _ *http.Request) {
	s := a.store.get()
	key := s.keys[s.active]
	if key == nil {
		http.Error(w, fmt.Sprintf("active %q names no key", s.active), http.StatusServiceUnavailable)
		return
	}
	now := time.Now().Add(a.ahead)
	tok, err := token.Sign(key, token.Claims{Kid: s.active, IssuedAt: now.Unix(), Expires: now.Add(a.ttl).Unix(),
		ID: a.started + "-" + strconv.FormatInt(a.serial.Add(1), 10), Issuer: a.name})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.issued.Add(1)
	fmt.Fprint(w, tok)
}

func (a *app) verify(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c, err := token.Verify(strings.TrimSpace(string(body)), a.store.get().keys, time.Now(), a.skew)
	if err != nil {
		for e, n := range a.refused {
			if errors.Is(err, e) {
				n.Add(1)
			}
		}
		w.Header().Set("X-Pod", a.name)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	a.ok.Add(1)
	w.Header().Set("X-Pod", a.name)
	fmt.Fprintf(w, "ok %s\n", c.Kid)
}
