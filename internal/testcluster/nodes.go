package testcluster

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	// KwokNodeLabel is the label key whose value "kwok" marks the nodes kwok manages.
	KwokNodeLabel = "type"
	// RunnerNode is the name of the node whose pods are really executed.
	RunnerNode = "runner-0"
	// RunnerLabel is the label (value "true") and NoSchedule taint key of the runner node. Pods meant to run there
	// carry a matching nodeSelector and toleration; see RunnerPlacement.
	RunnerLabel = "rotate-key.test/runner"
)

// RunnerPlacement returns the nodeSelector and toleration that put a pod on the runner node.
func RunnerPlacement() (map[string]string, []corev1.Toleration) {
	return map[string]string{RunnerLabel: "true"},
		[]corev1.Toleration{{Key: RunnerLabel, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}}
}

func nodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// createKwokNodes registers n fake nodes for kwok to manage (its node-initialize stage reports them Ready).
func (c *Cluster) createKwokNodes(ctx context.Context, n int) error {
	for i := 0; i < n; i++ {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{KwokNodeLabel: "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i)},
			},
			Status: corev1.NodeStatus{Capacity: nodeCapacity(), Allocatable: nodeCapacity()},
		}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("testcluster: creating kwok node: %w", err)
		}
	}
	return nil
}

// registerNode creates the runner node, reports it Ready and takes its Lease, as a kubelet would at start.
func (r *runner) registerNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   RunnerNode,
			Labels: map[string]string{RunnerLabel: "true", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": RunnerNode},
		},
		Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: RunnerLabel, Value: "true", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if _, err := r.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("testcluster: creating the runner node: %w", err)
	}
	return r.heartbeat(ctx)
}

// heartbeat reports the runner node Ready and renews its Lease; nodelifecycle marks a silent node NotReady.
func (r *runner) heartbeat(ctx context.Context) error {
	now := metav1.Now()
	node, err := r.client.CoreV1().Nodes().Get(ctx, RunnerNode, metav1.GetOptions{})
	if err != nil {
		return err
	}
	node.Status.Capacity, node.Status.Allocatable = nodeCapacity(), nodeCapacity()
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: RunnerNode}}
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "RunnerReady",
		Message: "the test process executes this node's pods", LastHeartbeatTime: now, LastTransitionTime: readySince(node, now),
	}}
	if _, err := r.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("testcluster: runner node status: %w", err)
	}
	leases := r.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lease, err := leases.Get(ctx, RunnerNode, metav1.GetOptions{})
	micro := metav1.NewMicroTime(time.Now())
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: RunnerNode, OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: RunnerNode, UID: node.UID}}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(RunnerNode), LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &micro},
		}, metav1.CreateOptions{})
	case err == nil:
		lease.Spec.RenewTime = &micro
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("testcluster: runner node lease: %w", err)
	}
	return nil
}

func readySince(node *corev1.Node, now metav1.Time) metav1.Time {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime
		}
	}
	return now
}

// ShortMarginValues set the library's clock-skew margin to 60 s: with the test cluster's 60 s TTL a rotation then
// finishes in minutes (the product default, 300 s, would add four more to every wait). The plain fixture chart
// takes the same margin as PlainShortMarginValues.
func ShortMarginValues() []string { return []string{"--set", "rotate-key.clockSkewSeconds=60"} }

// PlainShortMarginValues is ShortMarginValues for the fixture chart without the library (runbook-plain): the margin
// as the keyring Secret's annotation, which the plugin and the runbook read.
func PlainShortMarginValues() []string {
	return []string{"--set-string", `keyringAnnotations.rotate-key\.tracebloc\.io/clock-skew-seconds=60`}
}

// RunnerValues are the helm flags that place the rotate-key library's Jobs (hook Jobs and CronJob) on the runner
// node, where they are executed for real; the application's own pods stay on the kwok nodes.
func RunnerValues() []string {
	return []string{
		"--set-json", `rotate-key.jobs.nodeSelector={"` + RunnerLabel + `":"true"}`,
		"--set-json", `rotate-key.jobs.tolerations=[{"key":"` + RunnerLabel + `","operator":"Equal","value":"true","effect":"NoSchedule"}]`,
	}
}
