package kube

import (
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
)

func TestGrants(t *testing.T) {
	rules := []authorizationv1.ResourceRule{
		{Verbs: []string{"get", "update"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"app-keys"}},
		{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"events"}},
		{Verbs: []string{"*"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}},
	}
	for _, c := range []struct {
		p    permission
		want bool
	}{
		{permission{"get", "", "secrets", "app-keys"}, true},
		{permission{"get", "", "secrets", "other"}, false},
		{permission{"list", "", "secrets", ""}, false}, // a rule naming resources never grants a list
		{permission{"create", "", "events", ""}, true},
		{permission{"patch", "apps", "deployments", "web"}, true},
		{permission{"patch", "apps", "deployments", ""}, false},
		{permission{"patch", "apps", "statefulsets", "web"}, false},
		{permission{"list", "", "pods", ""}, false},
	} {
		if got := grants(rules, c.p); got != c.want {
			t.Errorf("%s: got %v", c.p, got)
		}
	}
	if !grants([]authorizationv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}, permission{"list", "", "pods", ""}) {
		t.Error("a wildcard rule (system:masters) grants everything")
	}
}
