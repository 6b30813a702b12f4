package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/action/actiontest"
	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
)

// A lock holder counts as dead only when it ran on this host, its PID is gone (or a zombie, or reused by another
// program); anything it cannot judge is alive, so a live run is never taken over by guesswork.
func TestHolderAlive(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	cases := map[string]bool{
		"op@elsewhere pid 1":                                   true,  // another host: cannot tell
		"op@" + host + " pid notanumber":                       true,  // unreadable: alive
		"pod app-rotate-key-2-rollout-x":                       true,  // a Job's pod: not a process here
		fmt.Sprintf("op@%s pid %d", host, dead.Process.Pid):    false, // gone
		fmt.Sprintf("op@%s pid %d", host, sleeper.Process.Pid): false, // alive, but not rotate-key: a reused PID
	}
	for holder, want := range cases {
		if got := holderAlive(holder); got != want {
			t.Errorf("holderAlive(%q) = %v, want %v", holder, got, want)
		}
	}
}

func TestIdentity(t *testing.T) {
	if h := holderIdentity(); !regexp.MustCompile(`^[^@ ]+@[^ ]+ pid [0-9]+$`).MatchString(h) {
		t.Errorf("holder %q is not user@host pid N", h)
	}
	id := newRotationID(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	if !regexp.MustCompile(`^20261130T120000Z-[0-9a-f]{6}$`).MatchString(id) || id == newRotationID(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("rotation id %q is not a timestamp and 6 random hex digits", id)
	}
}

// remind --ics FILE writes the calendar atomically and says how many events; an unwritable folder is an error
// and leaves nothing behind.
func TestRemindWritesTheFile(t *testing.T) {
	dir := t.TempDir()
	f := actiontest.New(keyring(2, 0, waiting(now.Add(time.Hour))))
	c := f.Config("", actiontest.Env(nil))
	root := NewRoot(c)
	file := filepath.Join(dir, "rotation.ics")
	root.SetArgs([]string{"remind", "app", "--ics", file})
	if code := Report(root.Execute(), &f.ErrOut); code != 0 {
		t.Fatalf("exit %d: %s", code, f.ErrOut.String())
	}
	data, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(data), "BEGIN:VCALENDAR") || strings.Count(string(data), "BEGIN:VEVENT") != 2 {
		t.Fatalf("%v\n%s", err, data)
	}
	if !strings.Contains(f.Out.String(), "wrote 2 event(s) to "+file) {
		t.Fatalf("stdout %q", f.Out.String())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left %d files in the folder, want the calendar alone", len(entries))
	}
	f = actiontest.New(keyring(2, 0, waiting(now.Add(time.Hour))))
	root = NewRoot(f.Config("", actiontest.Env(nil)))
	root.SetArgs([]string{"remind", "app", "--ics", filepath.Join(dir, "missing", "x.ics")})
	if code := Report(root.Execute(), &f.ErrOut); code != int(exitcode.Of(fmt.Errorf("x"))) || !strings.Contains(f.ErrOut.String(), "writing ") {
		t.Fatalf("unwritable: exit %d %q", code, f.ErrOut.String())
	}
}
