package docs

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tracebloc/helm-rotate-key/internal/rotation"
)

// The runbook's manual path writes the same state as the engine, so it is a second reader of the rotation's state
// machine: its list of known phases and its rollout names must be rotation.Table's. A phase added to the table
// fails this test until the runbook knows it (until then the runbook refuses the unknown phase: it fails safe).
func TestRunbookFollowsTheTransitionTable(t *testing.T) {
	doc, err := os.ReadFile("RUNBOOKS/requests-proxy-key-rotation.md")
	if err != nil {
		t.Fatal(err)
	}
	known := regexp.MustCompile(`case \$PHASE in ([A-Za-z|]+)\) ;; \*\) BAD="unknown phase`).FindSubmatch(doc)
	if known == nil {
		t.Fatal("the runbook's list of known phases (rk_load) was not found")
	}
	var want []string
	for _, p := range rotation.Phases() {
		want = append(want, string(p))
	}
	got := strings.Split(string(known[1]), "|")
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the runbook knows the phases %v, the table %v", got, want)
	}
	steps := regexp.MustCompile(`([A-Za-z]+)\) STEP=([a-z-]+) ;;`).FindAllSubmatch(doc, -1)
	rollouts := map[string]string{}
	for _, m := range steps {
		rollouts[string(m[1])] = string(m[2])
	}
	for _, p := range rotation.Phases() {
		if name := rotation.RolloutName(p); rollouts[string(p)] != name {
			t.Errorf("phase %s: the runbook's B2 restarts with %q, the table with %q", p, rollouts[string(p)], name)
		}
	}
	if len(rollouts) < 4 {
		t.Fatalf("found %d rollouts in B2", len(rollouts))
	}
}
