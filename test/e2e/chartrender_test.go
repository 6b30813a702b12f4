package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tracebloc/helm-rotate-key/test/chart"
)

// The chart's lint, golden renders and schema tests need Helm, not the cluster: they live in test/chart (make unit).
// What needs the API server stays here.

// TestChartObjectsAcceptedByAPIServer proves that every object the example chart renders, for every value
// combination of chartCases and with Helm 3 and Helm 4, is accepted by the real kube-apiserver
// (`kubectl apply --dry-run=server`: schema, validation and admission, nothing stored), one object accepted per
// rendered document. The namespace warns on Pod Security "restricted", and no pod template may draw that warning.
func TestChartObjectsAcceptedByAPIServer(t *testing.T) {
	parallel(t, 15*time.Second)
	ctx := context.Background()
	ns := namespace(t, "render", map[string]string{"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "latest"})
	helms := map[int]*chart.Helm{}
	for _, major := range helmMajors() {
		helms[major] = chart.NewHelm(t, cluster.Tools, major)
	}
	var figures []string
	for _, c := range chart.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			counts := map[int]int{}
			for _, major := range helmMajors() {
				render := helms[major].Template(t, exampleChart(), ns, c.Args...)
				_, keys, err := chart.Normalize(render) // the generated key values, to redact from kubectl's output
				if err != nil {
					t.Fatal(err)
				}
				docs := chart.KindDocs(render)
				cmd := exec.CommandContext(ctx, cluster.Tools.Kubectl, "--kubeconfig", cluster.Kubeconfig, "apply", "--dry-run=server", "-n", ns, "-f", "-")
				cmd.Stdin = strings.NewReader(render)
				var stdout, stderr strings.Builder
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err = cmd.Run()
				out, errOut := chart.Redact(stdout.String(), keys), chart.Redact(stderr.String(), keys)
				if err != nil {
					t.Fatalf("helm%d render refused by the API server: %v\n%s%s", major, err, out, errOut)
				}
				if strings.Contains(errOut, "PodSecurity") {
					t.Errorf("helm%d render draws a Pod Security warning:\n%s", major, errOut)
				}
				accepted := 0
				for _, l := range strings.Split(out, "\n") {
					if strings.HasSuffix(l, " created (server dry run)") {
						accepted++
					}
				}
				if accepted != docs || docs == 0 {
					t.Fatalf("helm%d: %d objects accepted, %d documents with a kind rendered\n%s%s", major, accepted, docs, out, errOut)
				}
				counts[major] = accepted
			}
			if counts[3] != counts[4] {
				t.Fatalf("Helm 3 rendered %d objects, Helm 4 %d", counts[3], counts[4])
			}
			if !t.Failed() {
				figures = append(figures, fmt.Sprintf("%s: %d objects accepted on Helm 3 and Helm 4", c.Name, counts[4]))
			}
		})
	}
	t.Logf("kube-apiserver %s (server dry run, namespace %s):\n  %s", cluster.Tools.Versions["K8S_VERSION"], ns, strings.Join(figures, "\n  "))
}
