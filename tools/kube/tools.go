//go:build tools

// Package kube pins the Kubernetes commands the test cluster is built from, so that `go mod tidy` keeps their
// dependencies in go.sum. Nothing here is compiled into the product.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
