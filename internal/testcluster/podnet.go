package testcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// podNetwork is the runner's pod network: pod IPs 10.42.a.b, served on this machine at 127.N.a.b. N is this
// cluster's own: several clusters-in-a-box on one machine (parallel test runs, a developer's `make cluster` beside
// `make test`) would otherwise bind the same loopback addresses, and one cluster's clients would reach another
// cluster's pods. Each cluster holds an exclusive lock on /tmp/rotate-key-podnet-N.lock for its lifetime.
type podNetwork struct {
	octet int
	lock  *os.File
}

// claimPodNetwork takes the first free loopback /16 (127.42 … 127.254).
func claimPodNetwork() (*podNetwork, error) {
	for n := 42; n <= 254; n++ {
		f, err := os.OpenFile(filepath.Join(os.TempDir(), fmt.Sprintf("rotate-key-podnet-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
			return &podNetwork{octet: n, lock: f}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("testcluster: every loopback pod network 127.42-254.0.0/16 is held by another cluster-in-a-box")
}

// release gives the network back (the lock also goes when the process exits).
func (p *podNetwork) release() {
	if p != nil && p.lock != nil {
		p.lock.Close()
	}
}

// local maps a pod IP to the loopback address its processes bind.
func (p *podNetwork) local(podIP string) string {
	if rest, ok := strings.CutPrefix(podIP, "10.42."); ok {
		return fmt.Sprintf("127.%d.%s", p.octet, rest)
	}
	return podIP
}

// LocalAddress is where a runner pod's IP is reached on this machine (10.42.a.b → 127.N.a.b, N this cluster's), as
// a cluster's pod network routes a pod IP; any other address is returned unchanged.
func (c *Cluster) LocalAddress(podIP string) string { return c.runner.net.local(podIP) }
