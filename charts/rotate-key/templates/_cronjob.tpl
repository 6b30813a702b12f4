{{- /*
Scheduled rotation (opt-in): a CronJob that starts a rotation when the keyring's next-rotation-due has passed, and
retires an old key whose TTL has passed, so nobody has to remember the quarter. concurrencyPolicy Forbid, and the
rotation's own lease, keep two runs from overlapping.
*/ -}}
{{- define "rotate-key.cronjob" -}}
{{- $v := index .Values "rotate-key" -}}
{{- if $v.schedule.enabled -}}
{{- $timeout := $v.rotation.rolloutTimeoutSeconds | int -}}
apiVersion: batch/v1
kind: CronJob
metadata:
  name: {{ printf "%s-rotate-key" (.Release.Name | trunc 40 | trimSuffix "-") }}
  labels:
    {{- include "rotate-key.labels" . | nindent 4 }}
spec:
  schedule: {{ $v.schedule.cron | quote }}
  {{- with $v.schedule.timeZone }}
  timeZone: {{ . | quote }}
  {{- end }}
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 3600
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 3
  jobTemplate:
    metadata:
      labels:
        {{- include "rotate-key.labels" . | nindent 8 }}
    spec:
      backoffLimit: 0
      activeDeadlineSeconds: {{ add (mul $timeout 4) 120 }}
      template:
        {{- include "rotate-key.jobPod" (dict "root" . "args" (list "hook" "cron" "--timeout" (printf "%ds" $timeout))) | nindent 8 }}
{{- end -}}
{{- end -}}
