{{- /*
The keyring Secret. On install it holds one generated key (64 random alphanumerics, about 380 bits) and
active: v1. On every later render it carries over the live Secret's data through `lookup`, so an upgrade never
regenerates or drops a key: rotations change the Secret in place (the hook Jobs or `helm rotate-key`). The keep
policy stops `helm uninstall` from deleting keys live tokens need. The rotate-key.tracebloc.io/ annotations are the
configuration the engine reads wherever it runs; its state annotations are written by the engine only.
*/ -}}
{{- /*
The keyring's data as it will be applied (base64 values): the live Secret's, or on install one generated key. It is
computed once per render and remembered, so the Secret and the guard hooks describe the same keys.
*/ -}}
{{- define "rotate-key.keyringData" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if not (hasKey $v "_data") -}}
{{- $name := include "rotate-key.secretName" . -}}
{{- $live := lookup "v1" "Secret" .Release.Namespace $name -}}
{{- $first := "key.v1" -}}
{{- if eq $v.secret.naming "vN" }}{{ $first = "v1" }}{{ else if ne $v.secret.naming "key.vN" }}{{ fail "rotate-key.secret.naming must be key.vN or vN" }}{{ end -}}
{{- $data := dict -}}
{{- if and $live $live.data -}}
{{- $data = $live.data -}}
{{- else -}}
{{- $data = dict $first (randAlphaNum 64 | b64enc) "active" ("v1" | b64enc) -}}
{{- end -}}
{{- $_ := set $v "_data" $data -}}
{{- end -}}
{{- toYaml (get $v "_data") -}}
{{- end -}}

{{- define "rotate-key.keyring" -}}
{{- $v := index .Values "rotate-key" -}}
{{- $name := include "rotate-key.secretName" . -}}
{{- $data := include "rotate-key.keyringData" . | fromYaml -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
    rotate-key.tracebloc.io/ttl-seconds: {{ include "rotate-key.ttlSeconds" . | quote }}
    rotate-key.tracebloc.io/rotation-interval: {{ $v.rotationInterval | quote }}
    rotate-key.tracebloc.io/clock-skew-seconds: {{ $v.clockSkewSeconds | int | quote }}
    {{- with include "rotate-key.consumers" . }}
    rotate-key.tracebloc.io/consumers: {{ . | quote }}
    {{- end }}
type: Opaque
data:
  {{- range $k := keys $data | sortAlpha }}
  {{ $k }}: {{ get $data $k }}
  {{- end }}
{{- end -}}
