{{- /*
The rotation, as post-upgrade hook Jobs ordered by weight. Mutating steps run post-upgrade because Helm renders
(and looks up the live Secret) before pre-upgrade hooks run and applies that render afterwards: a pre-upgrade change
of the Secret would be reverted by the apply. Each Job performs its own step only if the rotation stands at it, so
all of them run on every upgrade: a request (rotation.request) starts a rotation once, a failed Job is resumed by
the next upgrade, and the old key is retired by the first upgrade after its TTL.
*/ -}}
{{- define "rotate-key.hooks" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if $v.rotation.hooks -}}
{{- $request := $v.rotation.request | default "" | toString -}}
{{- if and $request (not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" $request)) -}}
{{- fail (printf "rotate-key.rotation.request %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. 2026q4)" $request) -}}
{{- end -}}
{{- $timeout := $v.rotation.rolloutTimeoutSeconds | int -}}
{{- $steps := list (list "1" "add" 10) (list "2" "rollout" 20) (list "3" "promote" 30) (list "4" "rollout" 40) (list "5" "retire" 50) -}}
{{- range $i, $s := $steps }}
{{- $args := list "hook" "step" (index $s 1) "--timeout" (printf "%ds" $timeout) -}}
{{- if and (eq (index $s 1) "add") $request }}{{ $args = concat $args (list "--request" $request) }}{{ end }}
{{- if $i }}
---
{{- end }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-rotate-key-%s-%s" ($.Release.Name | trunc 36 | trimSuffix "-") (index $s 0) (index $s 1) }}
  labels:
    {{- include "rotate-key.labels" $ | nindent 4 }}
  annotations:
    helm.sh/hook: post-upgrade
    helm.sh/hook-weight: {{ index $s 2 | quote }}
    helm.sh/hook-delete-policy: before-hook-creation
    rotate-key.tracebloc.io/hook-step: {{ index $s 1 }}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: {{ add (mul $timeout 2) 120 }}
  template:
    {{- include "rotate-key.jobPod" (dict "root" $ "args" $args) | nindent 4 }}
{{- end }}
{{- end -}}
{{- end -}}
