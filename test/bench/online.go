package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// onlineGuard measures the guard as Helm runs it (no --offline): besides the stream, it reads the live keyring
// Secret (one GET) and judges the render against it. The live Secret matches the stream's (same name, keep
// annotation and data), so the guard must pass the stream through byte for byte. The offline guard is measured
// again here, with the same cluster running, so the two columns differ only by what online mode adds.
func onlineGuard(ctx context.Context, env *clusterEnv, r *report) error {
	ns, err := env.namespace(ctx, "online")
	if err != nil {
		return err
	}
	if err := createStreamKeyring(ctx, env, ns); err != nil {
		return err
	}
	s := r.section("Guard, online, beside offline")
	s.para("Online mode is what Helm runs: the guard also reads the live keyring Secret (one GET) and checks the render against it. The bench creates the Secret of the stream (name `%s`, annotation `helm.sh/resource-policy: keep`, same data) in a fresh namespace through the API, then runs, %d times each, with the cluster running for both columns:", keyringName, env.runs)
	s.command("kubectl create namespace $NS && kubectl -n $NS create -f stream-1.yaml    # stream-1.yaml is the stream's Secret alone")
	s.command("KUBECONFIG=$KUBECONFIG bin/rotate-key guard --release=app --namespace=$NS < stream-N.yaml > /dev/null")
	s.command("bin/rotate-key guard --release=app --offline < stream-N.yaml > /dev/null")
	s.table("documents", "offline", "online", "online − offline", "online / offline", "online peak RSS")
	kubeEnv := env.kubeEnv()
	for _, n := range streamSizes {
		in := stream(n)
		off, err := env.repeat(ctx, env.runs, proc{name: env.binary, args: []string{"guard", "--release=app", "--offline"}, stdin: in})
		if err != nil {
			return err
		}
		on, err := env.repeat(ctx, env.runs, proc{name: env.binary, args: []string{"guard", "--release=app", "--namespace=" + ns}, stdin: in, env: kubeEnv})
		if err != nil {
			return err
		}
		s.row(fmt.Sprint(n), dur(off.median), dur(on.median), dur(on.median-off.median), ratio(on.median, off.median), mb(on.maxRSS))
		r.must(bytes.Equal(on.out, in), "online guard output byte-identical to its input, %d documents", n)
	}
	return nil
}

// createStreamKeyring creates, in ns, the live twin of the stream's keyring Secret.
func createStreamKeyring(ctx context.Context, env *clusterEnv, ns string) error {
	key, err := base64.StdEncoding.DecodeString(fixtureKey)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: keyringName, Annotations: map[string]string{"helm.sh/resource-policy": "keep"}},
		Data:       map[string][]byte{"key.v1": key, "active": []byte("v1")},
	}
	_, err = env.cluster.Client.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{})
	return err
}
