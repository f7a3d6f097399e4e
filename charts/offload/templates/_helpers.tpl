{{/* Names and labels, in the style of the prometheus-community charts. */}}

{{- define "offload.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "offload.fullname" -}}
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

{{- define "offload.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "offload.labels" -}}
helm.sh/chart: {{ include "offload.chart" . }}
{{ include "offload.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: offload
{{- end }}

{{- define "offload.selectorLabels" -}}
app.kubernetes.io/name: {{ include "offload.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component: (dict "root" $ "component" "web"). */}}
{{- define "offload.componentLabels" -}}
{{ include "offload.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "offload.componentSelectorLabels" -}}
{{ include "offload.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Resource name of one component: (dict "root" $ "component" "web"). */}}
{{- define "offload.componentName" -}}
{{- printf "%s-%s" (include "offload.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Image reference of an Offload image: (dict "root" $ "image" .Values.web.image). */}}
{{- define "offload.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- end }}

{{- define "offload.rabbitmqHost" -}}
{{- include "offload.componentName" (dict "root" . "component" "rabbitmq") }}
{{- end }}

{{- define "offload.rabbitmqSecret" -}}
{{- default (include "offload.componentName" (dict "root" . "component" "rabbitmq")) .Values.rabbitmq.auth.existingSecret }}
{{- end }}

{{- define "offload.rabbitmqCookieSecret" -}}
{{- default (include "offload.componentName" (dict "root" . "component" "rabbitmq-erlang-cookie")) .Values.rabbitmq.erlangCookie.existingSecret }}
{{- end }}

{{- define "offload.webSecret" -}}
{{- default (include "offload.componentName" (dict "root" . "component" "web")) .Values.web.existingSecret }}
{{- end }}

{{- define "offload.batchImportSecret" -}}
{{- default (include "offload.componentName" (dict "root" . "component" "batch-import")) .Values.web.batchImport.existingSecret }}
{{- end }}

{{- define "offload.redisSecret" -}}
{{- default (include "offload.componentName" (dict "root" . "component" "redis")) .Values.redis.auth.existingSecret }}
{{- end }}

{{/*
Broker settings for one service's container env: (dict "root" . "service" "web"), the
service one of web, mailer, stats, autoscaler. With the built-in broker the URLs are composed
from the Secret's usernames and passwords by Kubernetes' $(VAR) expansion, so no password
appears in a manifest; with an external broker they come whole from its Secret.
*/}}
{{/* True when the chart generates the built-in broker's Secret, and with it a user per
     service with only the rights it needs (offload_core.grants): the autoscaler's may only
     read the management API, the others publish and consume, and none declares (the
     topology Job does, as the administrator). */}}
{{- define "offload.rabbitmqMonitoringUser" -}}
{{- if and .Values.rabbitmq.builtin (not .Values.rabbitmq.auth.existingSecret) }}true{{ end }}
{{- end }}

{{- define "offload.brokerEnv" -}}
{{- $root := .root }}
{{- $secret := include "offload.rabbitmqSecret" $root }}
{{- $host := include "offload.rabbitmqHost" $root }}
{{- if and $root.Values.rabbitmq.builtin (include "offload.rabbitmqMonitoringUser" $root) }}
{{- if eq .service "autoscaler" }}
- name: RABBITMQ_MONITORING_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: monitoring-username}
- name: RABBITMQ_MONITORING_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: monitoring-password}
- name: OFFLOAD_MANAGEMENT_URL
  value: "http://$(RABBITMQ_MONITORING_USERNAME):$(RABBITMQ_MONITORING_PASSWORD)@{{ $host }}:15672"
{{- else }}
- name: RABBITMQ_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ .service }}-username}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ .service }}-password}
- name: OFFLOAD_AMQP_URL
  value: "amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{{ $host }}:5672/%2F"
# The topology Job declares; this user may not.
- name: OFFLOAD_DECLARE_TOPOLOGY
  value: "false"
{{- end }}
{{- else if $root.Values.rabbitmq.builtin }}
{{- /* The user's own Secret names one user: every service shares it and declares. */}}
{{ include "offload.brokerAdminEnv" $root }}
- name: OFFLOAD_MANAGEMENT_URL
  value: "http://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{{ $host }}:15672"
{{- else }}
- name: OFFLOAD_AMQP_URL
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.rabbitmq.external.existingSecret }}, key: {{ $root.Values.rabbitmq.external.amqpUrlKey }}}
- name: OFFLOAD_MANAGEMENT_URL
  valueFrom:
    secretKeyRef: {name: {{ $root.Values.rabbitmq.external.existingSecret }}, key: {{ $root.Values.rabbitmq.external.managementUrlKey }}}
{{- end }}
{{- end }}

{{/* The administrator's AMQP URL, for the topology Job alone. */}}
{{- define "offload.brokerAdminEnv" -}}
- name: RABBITMQ_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ include "offload.rabbitmqSecret" . }}, key: username}
- name: RABBITMQ_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "offload.rabbitmqSecret" . }}, key: password}
- name: OFFLOAD_AMQP_URL
  value: "amqp://$(RABBITMQ_USERNAME):$(RABBITMQ_PASSWORD)@{{ include "offload.rabbitmqHost" . }}:5672/%2F"
{{- end }}

{{/* Redis URL as OFFLOAD_REDIS_URL, for stores to reference as $(OFFLOAD_REDIS_URL). */}}
{{- define "offload.redisEnv" -}}
{{- if and .Values.redis.builtin (not .Values.redis.auth.existingSecret) }}
- name: REDIS_MAILER_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "offload.redisSecret" . }}, key: mailer-password}
- name: OFFLOAD_REDIS_URL
  value: "redis://mailer:$(REDIS_MAILER_PASSWORD)@{{ include "offload.componentName" (dict "root" . "component" "redis") }}:6379/0"
{{- else if .Values.redis.builtin }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "offload.redisSecret" . }}, key: password}
- name: OFFLOAD_REDIS_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "offload.componentName" (dict "root" . "component" "redis") }}:6379/0"
{{- else }}
- name: OFFLOAD_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.redis.external.existingSecret }}, key: {{ .Values.redis.external.urlKey }}}
{{- end }}
{{- end }}

{{/* The stats store's URL for (dict "root" . "user" "stats-runner" | "stats-api"): the built-in
     stats Redis as that user, or the external one's statsUrlKey (urlKey, the sent-store's
     Redis, when that is empty). */}}
{{- define "offload.statsStoreEnv" -}}
{{- $root := .root }}
{{- $variable := printf "REDIS_%s_PASSWORD" (.user | upper | replace "-" "_") }}
{{- if and $root.Values.redis.builtin (not $root.Values.redis.auth.existingSecret) }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef: {name: {{ include "offload.redisSecret" $root }}, key: {{ .user }}-password}
- name: OFFLOAD_STATS_STORE_URL
  value: "redis://{{ .user }}:$({{ $variable }})@{{ include "offload.componentName" (dict "root" $root "component" "stats-redis") }}:6379/0"
{{- else if $root.Values.redis.builtin }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "offload.redisSecret" $root }}, key: password}
- name: OFFLOAD_STATS_STORE_URL
  value: "redis://:$(REDIS_PASSWORD)@{{ include "offload.componentName" (dict "root" $root "component" "stats-redis") }}:6379/0"
{{- else }}
- name: OFFLOAD_STATS_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.redis.external.existingSecret }}
      key: {{ $root.Values.redis.external.statsUrlKey | default $root.Values.redis.external.urlKey }}
{{- end }}
{{- end }}

{{/* Settings every Offload service reads. */}}
{{- define "offload.commonEnv" -}}
- name: OFFLOAD_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: OFFLOAD_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: OFFLOAD_DELAY_TIERS
  value: {{ join "," .Values.runners.delayTiers | quote }}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $.Values.tracing.sampler | quote }}
{{- with $.Values.tracing.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Settings of the queue runners: (dict "root" $ "component" "mailer"). */}}
{{- define "offload.runnerEnv" -}}
- name: OFFLOAD_SERVICE_NAME
  value: {{ .component | quote }}
- name: OFFLOAD_GRACE_PERIOD
  value: {{ .root.Values.runners.gracePeriodSeconds | quote }}
- name: OFFLOAD_MAX_ATTEMPTS
  value: {{ .root.Values.runners.maxAttempts | quote }}
{{- end }}

{{/* Kubernetes must never kill a runner that is still draining. */}}
{{- define "offload.runnerTerminationGrace" -}}
{{- add .Values.runners.gracePeriodSeconds 15 }}
{{- end }}

{{/* Volumes every Offload pod gets: the root filesystem is read-only. */}}
{{- define "offload.scratchVolumes" -}}
- name: tmp
  emptyDir: {}
- name: state
  emptyDir: {}
{{- end }}

{{- define "offload.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: /var/lib/offload
{{- end }}

{{/* Pod-level placement and security: (dict "root" $ "values" .Values.web). */}}
{{- define "offload.podCommon" -}}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- include "offload.placement" .values }}
{{- end }}

{{/* nodeSelector, tolerations and affinity of a component's values, where set. */}}
{{- define "offload.placement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A component's pods spread over nodes, at most one apart:
(dict "component" $component "whenUnsatisfiable" ...). Nodes whose taints the pods do not
tolerate (a control plane, a cordoned node) are not counted as places to spread to: counted,
an empty control plane would cap every other node at one pod. */}}
{{- define "offload.spread" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ .whenUnsatisfiable }}
    nodeTaintsPolicy: Honor
    labelSelector:
      matchLabels:
        {{- include "offload.componentSelectorLabels" .component | nindent 8 }}
{{- end }}

{{/* True when runner Deployments leave their replica count to an autoscaler. */}}
{{- define "offload.autoscaled" -}}
{{- if ne .Values.autoscaling.engine "none" }}true{{ end }}
{{- end }}

{{/* Mail delivery settings of the mailer. */}}
{{- define "offload.mailEnv" -}}
{{- $smtp := .Values.mailer.smtp }}
{{- $host := $smtp.host }}
{{- if and (not $host) .Values.mailpit.enabled }}
{{- $host = include "offload.componentName" (dict "root" . "component" "mailpit") }}
{{- end }}
{{- if $host }}
- name: OFFLOAD_MAILER_BACKEND
  value: smtp
- name: OFFLOAD_SMTP_HOST
  value: {{ $host | quote }}
{{- if $smtp.host }}
- name: OFFLOAD_SMTP_PORT
  value: {{ $smtp.port | quote }}
- name: OFFLOAD_SMTP_SECURITY
  value: {{ $smtp.security | quote }}
{{- else }}
- name: OFFLOAD_SMTP_PORT
  value: "1025"
- name: OFFLOAD_SMTP_SECURITY
  value: none
{{- end }}
- name: OFFLOAD_SMTP_TIMEOUT
  value: {{ $smtp.timeoutSeconds | quote }}
- name: OFFLOAD_MAILER_MAX_SEND_RATE
  value: {{ $smtp.maxSendRate | quote }}
{{- if $smtp.username }}
- name: OFFLOAD_SMTP_USERNAME
  value: {{ $smtp.username | quote }}
- name: OFFLOAD_SMTP_PASSWORD_FILE
  value: /etc/offload/smtp/{{ $smtp.passwordKey }}
{{- end }}
{{- if $smtp.caSecret }}
- name: OFFLOAD_SMTP_CA_FILE
  value: /etc/offload/smtp-ca/ca.crt
{{- end }}
{{- else }}
- name: OFFLOAD_MAILER_BACKEND
  value: file
{{- end }}
{{- end }}

{{/*
The scaled runners, one entry per Deployment, shared by the offload and keda engines:
a list of (name, queueRegex, autoscaling values).
*/}}
{{- define "offload.scaledRunners" -}}
{{- $lanes := join "|" .Values.mailer.lanes }}
- component: mailer
  queueRegex: {{ printf "^mailer\\.signups\\.(%s)$" $lanes | quote }}
  autoscaling:
    {{- toYaml .Values.mailer.autoscaling | nindent 4 }}
- component: stats-runner
  queueRegex: "^stats\\.(activity|requests)$"
  autoscaling:
    {{- toYaml .Values.stats.runner.autoscaling | nindent 4 }}
{{- end }}

{{/* An ingress rule letting networkPolicy.operatorsFrom into every port of a pod, if set. */}}
{{- define "offload.operatorsIngress" -}}
{{- with .Values.networkPolicy.operatorsFrom }}
- from:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end }}

{{/* "true" when KEDA drives a runner by expected wait: KEDA has no such mode, so the
autoscaler image serves it as KEDA's external scaler (templates/keda/external-scaler.yaml). */}}
{{- define "offload.externalScalerEnabled" -}}
{{- if eq .Values.autoscaling.engine "keda" }}
{{- range $runner := include "offload.scaledRunners" . | fromYamlArray }}
{{- if gt ($runner.autoscaling.expectedWaitSeconds | default 0 | float64) 0.0 }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret and key holding the RabbitMQ management URL with the monitoring (or
administrator) credentials: KEDA's TriggerAuthentication and the external scaler read it. */}}
{{- define "offload.managementUrlSecretRef" -}}
{{- if .Values.rabbitmq.builtin }}
name: {{ include "offload.rabbitmqSecret" . }}
key: {{ if include "offload.rabbitmqMonitoringUser" . }}monitoring-url{{ else }}management-url{{ end }}
{{- else }}
name: {{ .Values.rabbitmq.external.existingSecret }}
key: {{ .Values.rabbitmq.external.managementUrlKey }}
{{- end }}
{{- end }}
