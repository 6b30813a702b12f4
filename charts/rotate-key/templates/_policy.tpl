{{- /*
The API-server layer of the guard (opt-in; cluster-scoped, so a cluster admin installs it): a
ValidatingAdmissionPolicy and its binding on this release's keyring Secret.

Everyone but the cluster's own controllers (the namespace controller and garbage collector, so that deleting the
namespace works; system:kube-controller-manager covers clusters whose controllers do not use their own
ServiceAccounts) is denied: deleting the Secret, changing a version's bytes, dropping the keep annotation, and adding
or changing ownerReferences (an owner someone deletes would make the exempt garbage collector delete the keyring).
The rotators — the rotation's ServiceAccount and the configured users and groups (e.g. the operators who run
`helm rotate-key --local`) — may in addition remove a version, move `active`, write the rotation state annotations
and add back a version at or below retired-up-to (restoring a lost active key); everyone else is denied those too.
No valid rotation step deletes the keyring, rewrites a key's bytes or sets an owner, so the exemption of a
ServiceAccount that anyone who can create pods in the namespace could use stops short of them.
*/ -}}
{{- define "rotate-key.admissionPolicy" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if $v.admissionPolicy.enabled -}}
{{- $secret := include "rotate-key.secretName" . -}}
{{- $name := printf "rotate-key.%s.%s" .Release.Namespace $secret | trunc 253 -}}
{{- $controllers := list "system:serviceaccount:kube-system:namespace-controller" "system:serviceaccount:kube-system:generic-garbage-collector" "system:kube-controller-manager" -}}
{{- $rotators := concat (list (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "rotate-key.serviceAccountName" .))) ($v.admissionPolicy.exemptUsers | default list) -}}
{{- $groups := $v.admissionPolicy.exemptGroups | default list -}}
{{- $config := list "rotate-key.tracebloc.io/ttl-seconds" "rotate-key.tracebloc.io/ttl-values-path" "rotate-key.tracebloc.io/rotation-interval" "rotate-key.tracebloc.io/consumers" "rotate-key.tracebloc.io/clock-skew-seconds" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ $name }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {{ .Release.Namespace }}
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["UPDATE", "DELETE"]
        resources: ["secrets"]
        resourceNames: [{{ $secret | quote }}]
  matchConditions:
    - name: not-a-cluster-controller
      expression: >-
        !(request.userInfo.username in {{ toJson $controllers }})
  variables:
    - name: rotator
      expression: >-
        request.userInfo.username in {{ toJson $rotators }} ||
        request.userInfo.groups.exists(g, g in {{ toJson $groups }})
  validations:
    - expression: request.operation != 'DELETE'
      message: >-
        the keyring Secret {{ $secret }} holds keys live tokens need and may not be
        deleted (rotate-key admission policy); to retire a key run helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || !has(oldObject.data) || !has(object.data) ||
        oldObject.data.all(k, !k.matches('^(key[.])?v[0-9]+$') || !(k in object.data) || object.data[k] == oldObject.data[k])
      message: >-
        this update changes the bytes of a key version of keyring Secret {{ $secret }}, which would reject every
        live token signed with it (rotate-key admission policy); keys are never rewritten, only added and retired
        by helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || variables.rotator || !has(oldObject.data) ||
        oldObject.data.all(k, !k.matches('^(key[.])?v[0-9]+$') || (has(object.data) && k in object.data))
      message: >-
        this update removes a key version of keyring Secret {{ $secret }}, which would reject live tokens
        (rotate-key admission policy); rotate and retire keys with helm rotate-key {{ .Release.Name }}, and
        upgrade with --reuse-values
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || variables.rotator || !has(oldObject.data) || !('active' in oldObject.data) ||
        (has(object.data) && 'active' in object.data && object.data['active'] == oldObject.data['active'])
      message: >-
        this update moves or removes `active` of keyring Secret {{ $secret }}: signers would sign with a version
        the rotation did not promote (rotate-key admission policy); promote with helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || variables.rotator ||
        ((!has(oldObject.metadata.annotations) || oldObject.metadata.annotations.all(k, !k.startsWith('rotate-key.tracebloc.io/') || k in {{ toJson $config }} ||
            (has(object.metadata.annotations) && k in object.metadata.annotations && object.metadata.annotations[k] == oldObject.metadata.annotations[k]))) &&
         (!has(object.metadata.annotations) || object.metadata.annotations.all(k, !k.startsWith('rotate-key.tracebloc.io/') || k in {{ toJson $config }} ||
            (has(oldObject.metadata.annotations) && k in oldObject.metadata.annotations))))
      message: >-
        this update writes the rotation state of keyring Secret {{ $secret }} (its rotate-key.tracebloc.io/
        annotations other than the configuration ones): a forged phase or retire-after makes the next run retire a
        key early (rotate-key admission policy); the state is written only by helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || variables.rotator || !has(object.data) || !has(oldObject.metadata.annotations) ||
        !oldObject.metadata.annotations[?'rotate-key.tracebloc.io/retired-up-to'].orValue('').matches('^v[1-9][0-9]{0,8}$') ||
        object.data.all(k, !k.matches('^(key[.])?v[1-9][0-9]{0,8}$') || (has(oldObject.data) && k in oldObject.data) ||
          int(k.substring(k.lastIndexOf('v') + 1)) > int(oldObject.metadata.annotations['rotate-key.tracebloc.io/retired-up-to'].substring(1)))
      message: >-
        this update adds back a key version of keyring Secret {{ $secret }} that was
        retired already (at or below its rotate-key.tracebloc.io/retired-up-to annotation): a retired key may have
        leaked and its tokens must stay rejected (rotate-key admission policy); new keys are added by
        helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || (has(object.metadata.annotations) &&
        object.metadata.annotations[?'helm.sh/resource-policy'].orValue('') == 'keep')
      message: >-
        this update removes the helm.sh/resource-policy: keep annotation of keyring Secret
        {{ $secret }} (rotate-key admission policy); keep it
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || !has(object.metadata.ownerReferences) ||
        (has(oldObject.metadata.ownerReferences) && object.metadata.ownerReferences == oldObject.metadata.ownerReferences)
      message: >-
        this update gives keyring Secret {{ $secret }} an owner: deleting that owner would make the garbage
        collector delete the keyring (rotate-key admission policy)
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
spec:
  policyName: {{ $name }}
  validationActions: [Deny]
{{- $byKind := dict -}}
{{- range $v.consumers -}}
{{- $_ := set $byKind .kind (append (get $byKind .kind | default list) (tpl .name $)) -}}
{{- end -}}
{{- if $byKind }}
---
{{- /* The rotation's ServiceAccount may patch the listed consumers (to restart them): this policy lets that patch
       change the restart annotation of the pod template and nothing else — not the pod spec (image, command, service
       account), not the selector or the pod labels — so a pod created with that ServiceAccount cannot run other code
       through a consumer. */}}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {{ $name }}.consumers
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {{ .Release.Namespace }}
    resourceRules:
      {{- range $kind := keys $byKind | sortAlpha }}
      - apiGroups: ["apps"]
        apiVersions: ["v1"]
        operations: ["UPDATE"]
        resources: [{{ printf "%ss" (lower $kind) | quote }}]
        resourceNames: {{ get $byKind $kind | toJson }}
      {{- end }}
  matchConditions:
    - name: the-rotation-serviceaccount
      expression: >-
        request.userInfo.username == {{ printf "system:serviceaccount:%s:%s" .Release.Namespace (include "rotate-key.serviceAccountName" .) | quote }}
  validations:
    - expression: >-
        object.spec.template.spec == oldObject.spec.template.spec && object.spec.selector == oldObject.spec.selector &&
        (has(object.spec.template.metadata.labels) ? object.spec.template.metadata.labels : {'': ''}) ==
          (has(oldObject.spec.template.metadata.labels) ? oldObject.spec.template.metadata.labels : {'': ''}) &&
        (!has(object.spec.template.metadata.annotations) || object.spec.template.metadata.annotations.all(k, k == 'rotate-key.tracebloc.io/restarted-for' ||
          (has(oldObject.spec.template.metadata.annotations) && k in oldObject.spec.template.metadata.annotations && oldObject.spec.template.metadata.annotations[k] == object.spec.template.metadata.annotations[k]))) &&
        (!has(oldObject.spec.template.metadata.annotations) || oldObject.spec.template.metadata.annotations.all(k, k == 'rotate-key.tracebloc.io/restarted-for' ||
          (has(object.spec.template.metadata.annotations) && k in object.spec.template.metadata.annotations)))
      message: >-
        the rotation's ServiceAccount may only restart this workload (the pod template's
        rotate-key.tracebloc.io/restarted-for annotation); this update changes more (rotate-key admission policy)
      reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {{ $name }}.consumers
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
spec:
  policyName: {{ $name }}.consumers
  validationActions: [Deny]
{{- end }}
{{- end -}}
{{- end -}}
