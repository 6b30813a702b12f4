{{- define "example-app.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- /* Pod Security "restricted": every container of the example runs non-root, without privileges. */ -}}
{{- define "example-app.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{- define "example-app.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end -}}

{{- /* The container fields both applications share. The keyring reaches a container either as environment
variables (envFrom: read once, at start) or as the files of a Secret volume (one file per kid plus `active`, updated
in running pods after the kubelet's sync delay); keyDelivery chooses, per application. command, args, env, port and
readinessProbe are for charts that run a real program (the tests run the token app). */ -}}
{{- define "example-app.container" -}}
{{- $v := .values -}}
- name: {{ .name }}
  image: {{ $v.image }}
  {{- with $v.command }}
  command: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.args }}
  args: {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "example-app.containerSecurity" .root | nindent 2 }}
  {{- with $v.port }}
  ports:
    - name: http
      containerPort: {{ . }}
  {{- end }}
  {{- with $v.readinessProbe }}
  readinessProbe: {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: TOKEN_TTL_SECONDS
      value: {{ .root.Values.tokenTtlSeconds | int64 | toString | quote }}
    {{- with $v.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if eq $v.keyDelivery "env" }}
  # Read at start: a new key reaches this container only through a restart.
  envFrom:
    - secretRef:
        name: {{ include "rotate-key.secretName" .root }}
  {{- else }}
  volumeMounts:
    - name: keyring
      mountPath: /etc/{{ .name }}/keys
      readOnly: true
  {{- end }}
{{- end -}}

{{- define "example-app.keyringVolume" -}}
{{- if eq .values.keyDelivery "volume" -}}
volumes:
  # One file per kid plus `active`; files update in running pods after the kubelet sync delay, but an app may
  # read them only at start, so rotation restarts it too.
  - name: keyring
    secret:
      secretName: {{ include "rotate-key.secretName" .root }}
{{- end }}
{{- end -}}
