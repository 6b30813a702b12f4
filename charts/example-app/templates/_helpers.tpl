{{/* The keyring Secret's name: the contract with `helm rotate-key` (its default --secret). */}}
{{- define "example-app.keyringSecret" -}}
{{ .Release.Name }}-requests-proxy-admin
{{- end -}}

{{- define "example-app.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
