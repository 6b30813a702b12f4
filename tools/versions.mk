# Versions of every tool the tests build from the Go module proxy. The Makefile includes this file and the test
# harness (internal/testcluster) parses it, so a version lives in exactly one place. Format: NAME := value.
K8S_VERSION := v1.37.2
ETCD_VERSION := v3.6.16
KWOK_VERSION := v0.8.0
HELM3_VERSION := v3.22.0
HELM4_VERSION := v4.3.1
STATICCHECK_VERSION := v0.8.2
KUSTOMIZE_VERSION := v5.7.1
