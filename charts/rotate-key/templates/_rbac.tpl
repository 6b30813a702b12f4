{{- /*
The Jobs' identity, least privilege, namespaced: get/update/patch on the keyring Secret by name, get/patch on the
named consumer workloads by name, list/watch pods (the rollout check; list cannot be limited by name), create
Events. Nothing cluster-wide. Rendered when any rotate-key Job is (rotation hooks, guard hooks, CronJob). The guard
Jobs get their own: get on the keyring and create Events, nothing they could write the keyring or a workload with.
*/ -}}
{{- define "rotate-key.rbac" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if or $v.rotation.hooks $v.schedule.enabled $v.guard.hooks -}}
{{- $sa := include "rotate-key.serviceAccountName" . -}}
{{- $byKind := dict -}}
{{- range $v.consumers -}}
{{- $_ := set $byKind .kind (append (get $byKind .kind | default list) (tpl .name $)) -}}
{{- end -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $sa }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $sa }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ include "rotate-key.secretName" . | quote }}]
    verbs: ["get", "update", "patch"]
  {{- range $kind := keys $byKind | sortAlpha }}
  - apiGroups: ["apps"]
    resources: [{{ printf "%ss" (lower $kind) | quote }}]
    resourceNames:
      {{- range get $byKind $kind }}
      - {{ . | quote }}
      {{- end }}
    verbs: ["get", "patch"]
  {{- end }}
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $sa }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $sa }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
{{- if $v.guard.hooks }}
{{- $guard := include "rotate-key.guardServiceAccountName" . }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $guard }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $guard }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ include "rotate-key.secretName" . | quote }}]
    verbs: ["get"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $guard }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $guard }}
subjects:
  - kind: ServiceAccount
    name: {{ $guard }}
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- end -}}
{{- end -}}
