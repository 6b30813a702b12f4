{{- /*
The server-side layer of the upgrade guard: pre-upgrade and pre-rollback hook Jobs that compare the keyring Secret
the operation is about to apply with the live one, and fail the operation before anything is applied when it would
drop a version, change a key, change active or drop the keep policy. Helm renders hooks with the revision: on a
rollback, the target revision's pre-rollback Job runs, describing the keyring as that revision rendered it — so a
rollback to before a rotation is refused (helm rotate-key rollback keeps the live keyring instead).

The description holds a 16-hex-digit SHA-256 fingerprint per version, never key bytes.

Call it with the root context (the library's own keyring), or from a chart that renders its keyring itself with
(dict "root" . "secretName" NAME "data" DATA "keep" BOOL), DATA the base64 data map or nil when not rendered.
*/ -}}
{{- define "rotate-key.guardHooks" -}}
{{- $root := . -}}
{{- $secretName := "" -}}
{{- $data := dict -}}
{{- $keep := true -}}
{{- $present := true -}}
{{- if hasKey . "root" -}}
  {{- $root = .root -}}
  {{- $secretName = .secretName -}}
  {{- $present = not (empty .data) -}}
  {{- $data = .data | default dict -}}
  {{- $keep = .keep -}}
{{- else -}}
  {{- $secretName = include "rotate-key.secretName" . -}}
  {{- $data = include "rotate-key.keyringData" . | fromYaml -}}
{{- end -}}
{{- $v := index $root.Values "rotate-key" -}}
{{- if $v.guard.hooks -}}
{{- $expect := "absent" -}}
{{- if $present -}}
  {{- $parts := list (printf "keep=%v" $keep) (printf "active=%s" (get $data "active" | b64dec)) -}}
  {{- range $k := keys $data | sortAlpha -}}
    {{- if ne $k "active" -}}
      {{- $parts = append $parts (printf "%s=%s" $k (get $data $k | b64dec | sha256sum | trunc 16)) -}}
    {{- end -}}
  {{- end -}}
  {{- $expect = join ";" $parts -}}
{{- end -}}
{{- /* Its own read-only ServiceAccount once that exists: the upgrade that brings it runs its guard hooks before it
       applies it, so until then (and under helm template, where lookup finds nothing) the rotation's. */ -}}
{{- $guardSA := include "rotate-key.guardServiceAccountName" $root -}}
{{- if not (lookup "v1" "ServiceAccount" $root.Release.Namespace $guardSA) -}}
  {{- $guardSA = include "rotate-key.serviceAccountName" $root -}}
{{- end -}}
{{- range $i, $where := list "pre-upgrade" "pre-rollback" }}
{{- if $i }}
---
{{- end }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-rotate-key-guard-%s" ($root.Release.Name | trunc 30 | trimSuffix "-") (trimPrefix "pre-" $where) }}
  labels:
    {{- include "rotate-key.labels" $root | nindent 4 }}
  annotations:
    helm.sh/hook: {{ $where }}
    helm.sh/hook-weight: "-100"
    helm.sh/hook-delete-policy: before-hook-creation
    rotate-key.tracebloc.io/hook-step: {{ printf "guard-%s" (trimPrefix "pre-" $where) }}
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 300
  template:
    {{- include "rotate-key.jobPod" (dict "root" $root "secretName" $secretName "serviceAccountName" $guardSA "args" (list "hook" "guard" "--where" $where "--release" $root.Release.Name "--expect" $expect)) | nindent 4 }}
{{- end }}
{{- end -}}
{{- end -}}
