{{- /* The keyring Secret's name. */ -}}
{{- define "rotate-key.secretName" -}}
{{- $v := index .Values "rotate-key" -}}
{{- tpl (required "rotate-key.secret.name is required" $v.secret.name) . | trunc 253 -}}
{{- end -}}

{{- /* The Jobs' ServiceAccount (and Role, RoleBinding) name. */ -}}
{{- define "rotate-key.serviceAccountName" -}}
{{- $v := index .Values "rotate-key" -}}
{{- tpl $v.serviceAccount.name . | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* The guard Jobs' ServiceAccount (get on the keyring, create Events: a guard only reads). */ -}}
{{- define "rotate-key.guardServiceAccountName" -}}
{{- printf "%s-guard" (include "rotate-key.serviceAccountName" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{- /*
The token TTL in seconds: rotate-key.ttlSeconds, else the application value at rotate-key.ttlValuesPath, else 90
days. A value that is not a whole number of seconds >= 60 fails the render: a wrong TTL would retire keys early.
*/ -}}
{{- define "rotate-key.ttlSeconds" -}}
{{- $v := index .Values "rotate-key" -}}
{{- $ttl := $v.ttlSeconds -}}
{{- if kindIs "invalid" $ttl -}}
  {{- $cur := .Values -}}
  {{- range splitList "." $v.ttlValuesPath -}}
    {{- if kindIs "map" $cur -}}{{- $cur = index $cur . -}}{{- else -}}{{- $cur = nil -}}{{- end -}}
  {{- end -}}
  {{- $ttl = $cur -}}
{{- end -}}
{{- if kindIs "invalid" $ttl -}}{{- $ttl = 7776000 -}}{{- end -}}
{{- if or (lt ($ttl | int64) 60) (ne ($ttl | float64) ($ttl | int64 | float64)) -}}
  {{- fail (printf "rotate-key: the token TTL %v (rotate-key.ttlSeconds or the value %s) must be a whole number of seconds, at least 60" $ttl $v.ttlValuesPath) -}}
{{- end -}}
{{- $ttl | int64 -}}
{{- end -}}

{{- /* The consumers as the engine's annotation reads them: "Deployment/a,StatefulSet/b". */ -}}
{{- define "rotate-key.consumers" -}}
{{- $v := index .Values "rotate-key" -}}
{{- $out := list -}}
{{- range $v.consumers -}}
  {{- $out = append $out (printf "%s/%s" .kind (tpl .name $)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{- define "rotate-key.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: rotate-key
app.kubernetes.io/part-of: {{ .Chart.Name }}
{{- end -}}

{{- /*
The pod of every rotate-key Job (hook or cron): the root context and the container's args in a dict. It passes Pod
Security "restricted": non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only root.
Args carry names only, never key material.
*/ -}}
{{- define "rotate-key.jobPod" -}}
{{- $ := .root -}}
{{- $v := index $.Values "rotate-key" -}}
metadata:
  labels:
    {{- include "rotate-key.labels" $ | nindent 4 }}
    {{- with $v.jobs.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.jobs.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ .serviceAccountName | default (include "rotate-key.serviceAccountName" $) }}
  automountServiceAccountToken: true
  restartPolicy: Never
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: rotate-key
      image: {{ if $v.image.digest }}"{{ $v.image.repository }}@{{ $v.image.digest }}"{{ else }}"{{ $v.image.repository }}:{{ $v.image.tag }}"{{ end }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/rotate-key"]
      args:
        {{- range .args }}
        - {{ . | quote }}
        {{- end }}
        - "--secret"
        - {{ .secretName | default (include "rotate-key.secretName" $) | quote }}
        - "--namespace"
        - {{ $.Release.Namespace | quote }}
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop: ["ALL"]
      terminationMessagePolicy: FallbackToLogsOnError
      {{- with $v.jobs.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- with $v.jobs.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.jobs.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.jobs.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- /* Everything the library renders, in one include. */ -}}
{{- define "rotate-key.all" -}}
{{- range $t := list "rotate-key.keyring" "rotate-key.rbac" "rotate-key.hooks" "rotate-key.guardHooks" "rotate-key.cronjob" "rotate-key.admissionPolicy" }}
{{- with include $t $ | trim }}
---
{{ . }}
{{- end }}
{{- end }}
{{- end -}}
