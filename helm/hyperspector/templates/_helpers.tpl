{{/* Names, labels and image references shared by the templates. */}}

{{- define "hyperspector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hyperspector.fullname" -}}
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

{{- define "hyperspector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hyperspector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "hyperspector.labels" -}}
{{ include "hyperspector.selectorLabels" . }}
app.kubernetes.io/part-of: hyperspector
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hyperspector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hyperspector.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag or repository@digest; the tag defaults to the chart's appVersion. */}}
{{- define "hyperspector.imageRef" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "hyperspector.image" -}}
{{- include "hyperspector.imageRef" (list .Values.image .) -}}
{{- end -}}

{{- define "hyperspector.processMapperImage" -}}
{{- if .Values.processMapper.image.repository -}}
{{- include "hyperspector.imageRef" (list .Values.processMapper.image .) -}}
{{- else -}}
{{- include "hyperspector.image" . -}}
{{- end -}}
{{- end -}}

{{/* Argo CD sync waves: CRDs, then RBAC and config, then the operator; MonitoredServers after it. */}}
{{- define "hyperspector.syncWave.crds" -}}argocd.argoproj.io/sync-wave: "-3"{{- end -}}
{{- define "hyperspector.syncWave.rbac" -}}argocd.argoproj.io/sync-wave: "-2"{{- end -}}
{{- define "hyperspector.syncWave.config" -}}argocd.argoproj.io/sync-wave: "-1"{{- end -}}
{{- define "hyperspector.syncWave.operator" -}}argocd.argoproj.io/sync-wave: "0"{{- end -}}

{{/* The node agent: its own component label, so the operator's Service, PDB and policy never select it. */}}
{{- define "hyperspector.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hyperspector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "hyperspector.agentLabels" -}}
{{ include "hyperspector.agentSelectorLabels" . }}
app.kubernetes.io/part-of: hyperspector
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "hyperspector.agentName" -}}
{{- printf "%s-agent" (include "hyperspector.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hyperspector.agentImage" -}}
{{- if .Values.agent.image.repository -}}
{{- include "hyperspector.imageRef" (list .Values.agent.image .) -}}
{{- else -}}
{{- include "hyperspector.image" . -}}
{{- end -}}
{{- end -}}

{{/*
The process mappers' headless Service: a DNS label (at most 63 characters), the subdomain of each
process-mapper pod.
*/}}
{{- define "hyperspector.processMapperService" -}}
{{- printf "%s-process-mappers" (include "hyperspector.fullname" . | trunc 47 | trimSuffix "-") -}}
{{- end }}
