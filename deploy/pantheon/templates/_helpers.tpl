{{/* Names: the release's full name, cut to the 63 characters a label value allows. */}}
{{- define "pantheon.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pantheon.rayClusterName" -}}
{{- default (include "pantheon.fullname" .) .Values.rayCluster.name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "pantheon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (printf "%s-worker" (include "pantheon.fullname" .)) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pantheon.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pantheon.workerSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "pantheon.image" -}}
{{- $repository := required "image.repository is required: an image with this repository at /app (see docs/kubernetes.md)" .Values.image.repository -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The node-group configuration as a dict { groups: [...] }: from --set-file nodeGroupsFile=... when
given, else from .Values.nodeGroups. One source for the ConfigMap and the RayCluster.
*/}}
{{- define "pantheon.nodeGroups" -}}
{{- if .Values.nodeGroupsFile -}}
{{- .Values.nodeGroupsFile | fromJson | toJson -}}
{{- else -}}
{{- .Values.nodeGroups | toJson -}}
{{- end -}}
{{- end -}}

{{/* Ray token authentication, for every Ray container (head and workers) and the worker. */}}
{{- define "pantheon.rayAuthEnv" -}}
{{- if .Values.rayCluster.authTokenSecret.name }}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.rayCluster.authTokenSecret.name }}
      key: {{ .Values.rayCluster.authTokenSecret.key }}
{{- end }}
{{- end -}}

{{/* The environment of every Ray container: what the local stack gives its Ray processes (stack/config.ts rayProcessEnv). */}}
{{- define "pantheon.rayWorkerEnv" -}}
# Temporal owns every retry: Ray must not re-run a step its memory monitor killed (docs/ray-execution.md).
- name: RAY_task_oom_retries
  value: '0'
- name: RAY_USAGE_STATS_ENABLED
  value: '0'
# Step code: pantheon_runtime and the allowed task packages.
- name: PYTHONPATH
  value: /app/ray-tasks
# Agent tasks read and write memory from the Ray nodes.
- name: QDRANT_URL
  value: {{ .Values.qdrant.url | quote }}
{{- if .Values.qdrant.apiKeySecret.name }}
- name: QDRANT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.qdrant.apiKeySecret.name }}
      key: {{ .Values.qdrant.apiKeySecret.key }}
{{- end }}
{{- include "pantheon.rayAuthEnv" . }}
{{- end -}}
