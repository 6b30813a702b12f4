{{- /*
The API-server layer of the guard (opt-in; cluster-scoped, so a cluster admin installs it): a
ValidatingAdmissionPolicy and its binding that deny, on this release's keyring Secret, an UPDATE that removes a key
version, changes a version's bytes, adds back a retired version (at or below the retired-up-to annotation) or
removes the keep annotation, and any DELETE — unless the request comes from
the rotation's ServiceAccount (which retires keys), a configured user or group (e.g. the operators who run
`helm rotate-key --local`), or the namespace controller and garbage collector (so deleting the namespace works;
system:kube-controller-manager covers clusters whose controllers do not use their own ServiceAccounts).
*/ -}}
{{- define "rotate-key.admissionPolicy" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if $v.admissionPolicy.enabled -}}
{{- $name := printf "rotate-key.%s.%s" .Release.Namespace (include "rotate-key.secretName" .) | trunc 253 -}}
{{- $users := concat (list (printf "system:serviceaccount:%s:%s" .Release.Namespace (include "rotate-key.serviceAccountName" .)) "system:serviceaccount:kube-system:namespace-controller" "system:serviceaccount:kube-system:generic-garbage-collector" "system:kube-controller-manager") ($v.admissionPolicy.exemptUsers | default list) -}}
{{- $groups := $v.admissionPolicy.exemptGroups | default list -}}
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
        resourceNames: [{{ include "rotate-key.secretName" . | quote }}]
  matchConditions:
    - name: not-exempt
      expression: >-
        !(request.userInfo.username in {{ toJson $users }}) &&
        !request.userInfo.groups.exists(g, g in {{ toJson $groups }})
  validations:
    - expression: request.operation != 'DELETE'
      message: >-
        the keyring Secret {{ include "rotate-key.secretName" . }} holds keys live tokens need and may not be
        deleted (rotate-key admission policy); to retire a key run helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || !has(oldObject.data) ||
        oldObject.data.all(k, !k.matches('^(key[.])?v[0-9]+$') ||
          (has(object.data) && k in object.data && object.data[k] == oldObject.data[k]))
      message: >-
        this update removes a key version of keyring Secret {{ include "rotate-key.secretName" . }} or changes its
        bytes, which would reject live tokens (rotate-key admission policy); rotate and retire keys with
        helm rotate-key {{ .Release.Name }}, and upgrade with --reuse-values
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || !has(object.data) || !has(oldObject.metadata.annotations) ||
        !oldObject.metadata.annotations[?'rotate-key.tracebloc.io/retired-up-to'].orValue('').matches('^v[1-9][0-9]{0,8}$') ||
        object.data.all(k, !k.matches('^(key[.])?v[1-9][0-9]{0,8}$') || (has(oldObject.data) && k in oldObject.data) ||
          int(k.substring(k.lastIndexOf('v') + 1)) > int(oldObject.metadata.annotations['rotate-key.tracebloc.io/retired-up-to'].substring(1)))
      message: >-
        this update adds back a key version of keyring Secret {{ include "rotate-key.secretName" . }} that was
        retired already (at or below its rotate-key.tracebloc.io/retired-up-to annotation): a retired key may have
        leaked and its tokens must stay rejected (rotate-key admission policy); new keys are added by
        helm rotate-key {{ .Release.Name }}
      reason: Forbidden
    - expression: >-
        request.operation == 'DELETE' || (has(object.metadata.annotations) &&
        object.metadata.annotations[?'helm.sh/resource-policy'].orValue('') == 'keep')
      message: >-
        this update removes the helm.sh/resource-policy: keep annotation of keyring Secret
        {{ include "rotate-key.secretName" . }} (rotate-key admission policy); keep it
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
{{- end -}}
{{- end -}}
