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
// Containers of a Job's pod do not run concurrently; image, resources, probes, volumes and security contexts are
// accepted but not enforced (Pod Security Admission still checks them at the API server).
//
// # Long-running pods (restartPolicy Always: a Deployment's, a StatefulSet's)
//
// The runner serves them the way a kubelet would, within these limits (the token app, test/tokenapp, runs this way
// for the traffic tests):
//
//   - each pod gets an IP of its own, 10.42.a.b, in its status (and in status.podIP for the downward API); its
//     processes must bind to RUNNER_BIND_IP, the loopback address 127.N.a.b (N is this cluster's own: two clusters
//     on one machine never share addresses), because the runner has no network namespaces and the API server
//     refuses loopback addresses in EndpointSlices. Cluster.LocalAddress maps one to the other, as a cluster's pod network routes a pod IP; the EndpointSlice controller publishes the pod IPs of
//     ready pods as for any pod.
//   - init containers run first, one after another; then every container runs at once, and is started again 1 s
//     after it exits (restartCount counts it) until the pod is deleted. A kubelet's back-off is not modelled.
//   - env and envFrom are resolved from the Secrets and ConfigMaps as they are when the container starts, never
//     again (as with a kubelet).
//   - Secret volumes are projected into a folder of the pod, with the kubelet's atomic layout (a "..data" link
//     swapped in one rename), and the container finds each volumeMount's path under RUNNER_ROOT (no mount
//     namespaces: a program written for the runner joins its paths to RUNNER_ROOT, empty in a real container).
//     A pod whose Secret is missing waits in ContainerCreating until it exists, as with a kubelet. When a mounted
//     Secret changes, each pod's files are rewritten after a delay drawn from Options.VolumeRefresh (default
//     0–90 s, as a kubelet: it refreshes on its next periodic sync, syncFrequency 1 m with the pod worker's resync
//     jittered by 0.5, with the default Watch strategy). Items are honoured; subPath mounts are
//     refreshed too (a kubelet would not); ConfigMap, projected, emptyDir and other volumes are not provided.
//   - readiness: an httpGet or tcpSocket readinessProbe is run against the pod's bind address on its period
//     (periodSeconds, timeoutSeconds, success/failure thresholds, initialDelaySeconds); exec and gRPC probes and
//     liveness/startup probes are not run (the container counts as ready). Without a readiness probe a container
//     is ready once started. PodReady and ContainersReady follow.
//   - deletion: SIGTERM to every container's process group, SIGKILL once the pod's deletion grace period is over
//     (terminationGracePeriodSeconds, default 30 s), then the deletion is confirmed (grace 0), as a kubelet
//     confirms it. preStop hooks are not run. Meanwhile the EndpointSlice controller marks the endpoint
//     terminating, so clients stop picking it.
//   - nothing is isolated: no cgroups (resources are not enforced), no user namespaces (runAsUser is not
//     applied), no image (the command's first word names a program, as for Job pods).
package testcluster
