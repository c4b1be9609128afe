{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gateway.labels" -}}
helm.sh/chart: {{ include "gateway.chart" . }}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seedance-gateway
{{- end }}

{{- define "gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "gateway.secretName" -}}
{{- default (include "gateway.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "gateway.claimName" -}}
{{- default (printf "%s-data" (include "gateway.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* ---------------------------------------------------------------- modes
SQLite mode: database.url starts with "sqlite". The database is a file on the /data volume, which
only one pod may use: the chart renders exactly one API replica, no HPA, no PDB, no worker, and a
Recreate rollout. "true" or "" (templates compare with `if`). */}}

{{- define "gateway.sqlite" -}}
{{- if hasPrefix "sqlite" (lower .Values.database.url) }}true{{ end }}
{{- end }}

{{- define "gateway.fileStorage" -}}
{{- if hasPrefix "file://" (lower .Values.storage.url) }}true{{ end }}
{{- end }}

{{/* The API replica count: 1 in SQLite mode, whatever else is set. */}}
{{- define "gateway.replicas" -}}
{{- if include "gateway.sqlite" . }}1{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}

{{- define "gateway.autoscaling" -}}
{{- if and .Values.autoscaling.enabled (not (include "gateway.sqlite" .)) }}true{{ end }}
{{- end }}

{{- define "gateway.worker" -}}
{{- if and .Values.worker.enabled (not (include "gateway.sqlite" .)) }}true{{ end }}
{{- end }}

{{/* More than one gateway pod may run at once (and so share /data if it is a volume). */}}
{{- define "gateway.multiPod" -}}
{{- if and (not (include "gateway.sqlite" .)) (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled .Values.worker.enabled) }}true{{ end }}
{{- end }}

{{/* /data is a PersistentVolumeClaim (SQLite, or file:// blobs) rather than an emptyDir. */}}
{{- define "gateway.persistent" -}}
{{- if and .Values.persistence.enabled (or (include "gateway.sqlite" .) (include "gateway.fileStorage" .)) }}true{{ end }}
{{- end }}

{{/* ---------------------------------------------------------------- checks
Rendered once (from the Deployment); every misconfiguration the chart can see fails the render. */}}
{{- define "gateway.validate" -}}
{{- $sqlite := include "gateway.sqlite" . }}
{{- if and $sqlite (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%d needs PostgreSQL: SQLite mode (database.url=%s) runs exactly one gateway replica. Set database.url to a PostgreSQL URL (and storage.url to s3://...) to scale out, or set replicaCount=1." (int .Values.replicaCount) .Values.database.url) }}
{{- end }}
{{- if and $sqlite .Values.worker.enabled }}
{{- fail "worker.enabled needs PostgreSQL: in SQLite mode the single gateway pod runs the job runner itself (the worker could not share the database file)." }}
{{- end }}
{{- $config := .Values.config | default dict }}
{{- range $section, $values := $config }}
{{- if not (kindIs "map" $values) }}
{{- fail (printf "config.%s must be a map of settings (a TOML table), got %s" $section (kindOf $values)) }}
{{- end }}
{{- end }}
{{- if hasKey (get $config "database" | default dict) "url" }}
{{- fail "config.database.url is not used: set the top-level database.url (it goes to the Secret as GATEWAY_DATABASE__URL, which overrides config.toml)." }}
{{- end }}
{{- if hasKey (get $config "storage" | default dict) "url" }}
{{- fail "config.storage.url is not used: set the top-level storage.url (it is passed as GATEWAY_STORAGE__URL, which overrides config.toml)." }}
{{- end }}
{{- $server := get $config "server" | default dict }}
{{- if or (hasKey $server "host") (hasKey $server "port") }}
{{- fail "config.server.host/port are set by the chart (serve --host 0.0.0.0 --port containerPort): set containerPort instead." }}
{{- end }}
{{- $jobs := get $config "jobs" | default dict }}
{{- if and (hasKey $jobs "runner") (not $jobs.runner) (not (include "gateway.worker" .)) }}
{{- fail "config.jobs.runner=false and no worker Deployment: nothing would run the background jobs. Remove it (the chart sets GATEWAY_JOBS__RUNNER=false on API pods when worker.enabled)." }}
{{- end }}
{{- if and (not .Values.existingSecret) (not $sqlite) (hasSuffix "://" .Values.database.url) }}
{{- fail (printf "database.url=%s is only a scheme: give the full URL, or set existingSecret to a Secret holding GATEWAY_DATABASE__URL." .Values.database.url) }}
{{- end }}
{{- if and (include "gateway.fileStorage" .) (include "gateway.multiPod" .) }}
{{- if not .Values.persistence.enabled }}
{{- fail (printf "storage.url=%s with several gateway pods needs a shared volume: enable persistence with accessModes [ReadWriteMany], or use s3:// storage." .Values.storage.url) }}
{{- else if and (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail (printf "storage.url=%s with several gateway pods needs persistence.accessModes [ReadWriteMany] (every pod mounts /data), or s3:// storage." .Values.storage.url) }}
{{- end }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- config.toml
Helm's toToml turns every number into a float (33554432 -> 3.3554432e+07), so the file is written
here: integral numbers as integers, keys sorted, nested maps as inline tables. */}}

{{- define "gateway.configToml" -}}
# Rendered by the seedance-gateway Helm chart from .Values.config (see config.example.toml).
# database.url and storage.url come from the environment: GATEWAY_DATABASE__URL, GATEWAY_STORAGE__URL.
{{- range $section, $values := .Values.config }}

[{{ include "gateway.tomlKey" $section }}]
{{- range $key, $value := $values }}
{{ include "gateway.tomlKey" $key }} = {{ include "gateway.tomlValue" $value }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gateway.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "gateway.tomlValue" -}}
{{- if kindIs "map" . }}
{{- $items := list }}
{{- range $k, $v := . }}
{{- $items = append $items (printf "%s = %s" (include "gateway.tomlKey" $k) (include "gateway.tomlValue" $v)) }}
{{- end }}
{{- if $items }}{{ printf "{ %s }" (join ", " $items) }}{{ else }}{}{{ end }}
{{- else if kindIs "slice" . }}
{{- $items := list }}
{{- range . }}
{{- $items = append $items (include "gateway.tomlValue" .) }}
{{- end }}
{{- printf "[%s]" (join ", " $items) }}
{{- else if kindIs "string" . }}
{{- toJson . }}
{{- else if kindIs "bool" . }}
{{- . }}
{{- else if or (kindIs "float64" .) (kindIs "float32" .) }}
{{- if eq (floor .) (float64 .) }}{{ printf "%d" (int64 .) }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "invalid" . }}
{{- fail "config: TOML has no null; remove the key to use the gateway's default" }}
{{- else }}
{{- printf "%d" (int64 .) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- pod parts
Shared by the API Deployment, the worker Deployment and the migrations Job. */}}

{{- define "gateway.containerArgs" -}}
- --config
- /etc/gateway/config.toml
{{- end }}

{{/* Environment of a gateway container. Call with (dict "root" $ "role" "api"|"worker"|"migrate"). */}}
{{- define "gateway.env" -}}
{{- $root := .root -}}
- name: TMPDIR
  value: /tmp
- name: GATEWAY_STORAGE__URL
  value: {{ $root.Values.storage.url | quote }}
{{- if and $root.Values.existingSecret (include "gateway.sqlite" $root) }}
{{- /* A SQLite URL holds no secret; with existingSecret the chart cannot put it in the Secret. */}}
- name: GATEWAY_DATABASE__URL
  value: {{ $root.Values.database.url | quote }}
{{- end }}
{{- if and (eq .role "api") (include "gateway.worker" $root) }}
{{- /* The worker Deployment runs the background job runner; API pods only serve. */}}
- name: GATEWAY_JOBS__RUNNER
  value: "false"
{{- end }}
{{- with $root.Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gateway.envFrom" -}}
- secretRef:
    name: {{ include "gateway.secretName" . }}
{{- with .Values.envFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gateway.volumeMounts" -}}
- name: config
  mountPath: /etc/gateway
  readOnly: true
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "gateway.volumes" -}}
- name: config
  configMap:
    name: {{ include "gateway.fullname" . }}
- name: data
{{- if include "gateway.persistent" . }}
  persistentVolumeClaim:
    claimName: {{ include "gateway.claimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}
