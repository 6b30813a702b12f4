package testcluster

import "testing"

func TestClassify(t *testing.T) {
	for _, c := range []struct{ method, path, query, want string }{
		{"GET", "/api/v1/namespaces/team/secrets/app-keys", "", "GET secrets app-keys"},
		{"GET", "/api/v1/namespaces/team/secrets", "labelSelector=owner%3Dhelm", "LIST secrets"},
		{"GET", "/api/v1/namespaces/team/pods", "watch=true", "WATCH pods"},
		{"GET", "/apis/apps/v1/namespaces/team/deployments/web", "", "GET deployments web"},
		{"PATCH", "/apis/apps/v1/namespaces/team/deployments/web", "", "PATCH deployments web"},
		{"PUT", "/api/v1/namespaces/team/secrets/app-keys", "", "UPDATE secrets app-keys"},
		{"POST", "/api/v1/namespaces/team/events", "", "CREATE events"},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "", "CREATE selfsubjectaccessreviews"},
		{"GET", "/api/v1/namespaces/team", "", "GET namespaces team"},
		{"GET", "/apis/apps/v1/namespaces/team/deployments/web/scale", "", "GET deployments/scale web"},
		{"DELETE", "/api/v1/namespaces/team/pods", "", "DELETECOLLECTION pods"},
		{"GET", "/api", "", "DISCOVERY "},
		{"GET", "/apis/apps/v1", "", "DISCOVERY "},
		{"GET", "/version", "", "DISCOVERY "},
		{"GET", "/openapi/v3", "", "DISCOVERY "},
	} {
		if got := Classify(c.method, c.path, c.query, "").String(); got != c.want {
			t.Errorf("%s %s?%s: got %q, want %q", c.method, c.path, c.query, got, c.want)
		}
	}
}
