{{/* Names, labels and the pieces every pod of the chart shares. */}}

{{- define "callscope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callscope.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "callscope.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callscope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callscope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "callscope.labels" -}}
helm.sh/chart: {{ include "callscope.chart" . }}
{{ include "callscope.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "callscope.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "callscope.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "callscope.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "callscope.tokenSecretName" -}}
{{- default (include "callscope.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The Secret and key that hold CALLSCOPE_DATABASE_URL for the long-running pods. */}}
{{- define "callscope.databaseSecretName" -}}
{{- default (include "callscope.fullname" .) .Values.database.existingSecret -}}
{{- end -}}

{{- define "callscope.databaseSecretKey" -}}
{{- ternary .Values.database.existingSecretKey "database-url" (ne .Values.database.existingSecret "") -}}
{{- end -}}

{{/* Fails the render when a value the processes cannot start without is missing. */}}
{{- define "callscope.checkValues" -}}
{{- if and (not .Values.database.url) (not .Values.database.existingSecret) -}}
{{- fail "set database.url or database.existingSecret (the PostgreSQL URL)" -}}
{{- end -}}
{{- if and (not .Values.auth.existingSecret) (or (not .Values.auth.ingestTokens) (not .Values.auth.supervisorTokens)) -}}
{{- fail "set auth.ingestTokens and auth.supervisorTokens, or auth.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* The API pods' terminationGracePeriodSeconds: preStop, then the process's own grace. */}}
{{- define "callscope.apiTerminationGrace" -}}
{{- $l := .Values.lifecycle -}}
{{- add (int $l.preStopSleepSeconds) (int (ceil $l.shutdownGraceSeconds)) (int $l.terminationMarginSeconds) -}}
{{- end -}}

{{/* The env of every callscope container besides the ConfigMap: database URL and tokens. */}}
{{- define "callscope.secretEnv" -}}
- name: CALLSCOPE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "callscope.databaseSecretName" . }}
      key: {{ include "callscope.databaseSecretKey" . }}
- name: CALLSCOPE_INGEST_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "callscope.tokenSecretName" . }}
      key: ingest-tokens
- name: CALLSCOPE_SUPERVISOR_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "callscope.tokenSecretName" . }}
      key: supervisor-tokens
- name: CALLSCOPE_METRICS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "callscope.tokenSecretName" . }}
      key: metrics-token
      optional: true
- name: CALLSCOPE_TWILIO_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "callscope.tokenSecretName" . }}
      key: twilio-auth-token
      optional: true
{{- end -}}

{{/* Pod-level settings every pod of the chart shares. */}}
{{- define "callscope.podCommon" -}}
serviceAccountName: {{ include "callscope.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "callscope.tmpMount" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}

{{- define "callscope.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}
