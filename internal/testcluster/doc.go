// Package testcluster is the cluster-in-a-box every end-to-end test runs against: a real etcd and kube-apiserver
// (started through controller-runtime's envtest, with the ServiceAccount admission plugin turned back on), a real
// kube-controller-manager and kube-scheduler, kwok managing fake nodes on which Deployment pods become Ready, a
// "runner" node whose pods are really executed, and the real Helm 3 and Helm 4 CLIs. Every binary is built from
// the Go module proxy by `make tools` (tools/build-tool.sh, versions in tools/versions.mk) and cached under
// .cache/tools; a warm run rebuilds nothing.
//
// # Nodes
//
// kwok manages the nodes labelled type=kwok (KwokNodeLabel). kwok never runs a container: a Job's pod that lands
// on a kwok node is failed at once by the stage tools/kwok/job-pod-not-executed.yaml, so a missing runner
// toleration shows up as a failure, never as a silent success.
//
// # The runner contract
//
// The runner node (RunnerNode, label and taint RunnerLabel=true:NoSchedule) has no kubelet; an agent in the test
// process plays the kubelet for the pods bound to it. A pod that tolerates the taint and selects the label gets:
//
//   - each init container, then each container, run one after another as a local process: argv is the
//     container's command followed by its args, with $(VAR) references expanded as the kubelet does. The first
//     word's base name (e.g. "/rotate-key" → "rotate-key") is looked up in Options.Executables, this project's
//     binary standing in for its image; an unknown name, or a container without a command, fails the pod with
//     exit code 127 and says why. The working directory is a fresh temporary folder.
//   - the environment: PATH and HOME of the test process (HOME a fresh folder), then the container's env in
//     order — plain values, the downward-API fields metadata.name, metadata.namespace, metadata.uid,
//     metadata.labels['k'], metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.podIP,
//     status.hostIP, and secretKeyRef/configMapKeyRef values (read with the cluster's admin identity, as a kubelet
//     does) — and envFrom, and finally KUBECONFIG.
//   - KUBECONFIG: a kubeconfig that holds a token of the pod's ServiceAccount bound to the pod (TokenRequest with
//     BoundObjectRef), so every API call the process makes is authorised by the chart's real RBAC.
//   - the pod's status written back: Running with the container running while it executes, then Succeeded (every
//     container exited 0) or Failed, with each container's terminated state: exit code, reason Completed/Error,
//     and the last 4 KiB of its output as the termination message (as terminationMessagePolicy
//     FallbackToLogsOnError would). The full output is kept in memory: Cluster.PodLogs.
//   - a pod deleted while bound to the runner is removed at once (grace period 0), as a kubelet would confirm it.
//
// Containers do not run concurrently within a pod; image, resources, probes, volumes and security contexts are
// accepted but not enforced (Pod Security Admission still checks them at the API server).
package testcluster
