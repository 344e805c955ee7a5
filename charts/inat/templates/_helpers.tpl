{{/* The chart's name, or nameOverride. */}}
{{- define "inat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's resources. Kept to 52 characters: the Job controller
names pods JOB-INDEX-xxxxx and labels them with the Job's name (63 at most).
*/}}
{{- define "inat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "inat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that identify the release's pods. */}}
{{- define "inat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels of the pods: every standard label but helm.sh/chart. A Job's pod template cannot
change while the Job exists, so a label that changes with every chart version would make
each `helm upgrade` to a new chart fail; the version label is appVersion's, the image's
default tag.
*/}}
{{- define "inat.podLabels" -}}
{{ include "inat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: {{ ternary "sweep" "training-run" (include "inat.isSweep" . | eq "true") }}
app.kubernetes.io/part-of: inat
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of every resource: the pods' and the chart's name and version. */}}
{{- define "inat.labels" -}}
helm.sh/chart: {{ include "inat.chart" . }}
{{ include "inat.podLabels" . }}
{{- end -}}

{{/* The ServiceAccount of the pods; empty: the namespace's default. */}}
{{- define "inat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "inat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image reference: a digest when given, else the tag (default: appVersion). With
global.imageRegistry (a parent chart's mirror), that registry replaces the repository's own
(its first part when that has a "." or ":" or is localhost, as Docker reads references).
*/}}
{{- define "inat.image" -}}
{{- $repository := .Values.image.repository -}}
{{- with (.Values.global | default dict).imageRegistry -}}
{{- $parts := splitList "/" $repository -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $parts = rest $parts -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) (join "/" $parts) -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Names of the image pull Secrets: global.imagePullSecrets (names or {name: ...}, as parent
charts give them), then image.pullSecrets, each once.
*/}}
{{- define "inat.imagePullSecrets" -}}
{{- $names := list -}}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.image.pullSecrets | default list) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/* "true" when the job is a sweep (an Indexed Job), as inat.sweeps.jobs.expand decides. */}}
{{- define "inat.isSweep" -}}
{{- not (empty .Values.job.sweep) -}}
{{- end -}}

{{/*
The Indexed Job's completions: the number of points, as inat.sweeps.jobs.expand counts them
(1 for a single run; a grid has one point per combination of the swept values; random draws
run_cap (num_points) of them: at most every combination when each key has a list of values);
an adaptive sweep's pods of workers (inat.tasks).
*/}}
{{- define "inat.points" -}}
{{- $sweep := .Values.job.sweep -}}
{{- if empty $sweep -}}
1
{{- else if eq (include "inat.isAdaptive" .) "true" -}}
{{- include "inat.tasks" . -}}
{{- else -}}
{{- $grid := 1 -}}
{{- $finite := "true" -}}
{{- if $sweep.params -}}
{{- range $key, $values := $sweep.params -}}
{{- $grid = mul $grid (len $values) -}}
{{- end -}}
{{- else -}}
{{- $grid = include "inat.combinations" $sweep.parameters | int -}}
{{- $finite = include "inat.finite" $sweep.parameters -}}
{{- end -}}
{{- if eq (default "grid" (coalesce $sweep.method $sweep.strategy)) "random" -}}
{{- $cap := int (coalesce $sweep.run_cap $sweep.num_points) -}}
{{- ternary (min $grid $cap) $cap (eq $finite "true") -}}
{{- else -}}
{{- $grid -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" for an adaptive sweep (method: bayes): its pods run workers that take points. */}}
{{- define "inat.isAdaptive" -}}
{{- $sweep := .Values.job.sweep | default dict -}}
{{- eq (toString (coalesce $sweep.method $sweep.strategy "grid")) "bayes" -}}
{{- end -}}

{{/*
An adaptive sweep's pods, as inat.sweeps.worker.tasks counts them: its `parallelism` workers,
`workers_per_gpu` of them to a pod.
*/}}
{{- define "inat.tasks" -}}
{{- $sweep := .Values.job.sweep -}}
{{- $workers := int (default 1 $sweep.parallelism) -}}
{{- $perGpu := int (default 1 $sweep.workers_per_gpu) -}}
{{- div (add $workers (sub $perGpu 1)) $perGpu -}}
{{- end -}}

{{/* The combinations of a `parameters` block (W&B's grammar, nested blocks included). */}}
{{- define "inat.combinations" -}}
{{- $n := 1 -}}
{{- range $key, $spec := . -}}
{{- if hasKey $spec "parameters" -}}
{{- $n = mul $n (include "inat.combinations" $spec.parameters | int) -}}
{{- else if hasKey $spec "values" -}}
{{- $n = mul $n (len $spec.values) -}}
{{- end -}}
{{- end -}}
{{- $n -}}
{{- end -}}

{{/* "true" when every key of a `parameters` block is a list of values or a constant. */}}
{{- define "inat.finite" -}}
{{- $finite := true -}}
{{- range $key, $spec := . -}}
{{- if hasKey $spec "parameters" -}}
{{- $finite = and $finite (eq (include "inat.finite" $spec.parameters) "true") -}}
{{- else if and (hasKey $spec "distribution") (ne $spec.distribution "categorical") -}}
{{- $finite = false -}}
{{- end -}}
{{- end -}}
{{- $finite -}}
{{- end -}}

{{/*
The container's resources, as JSON: `resources` with each extended resource (a name with a
domain, such as nvidia.com/gpu) given as a limit as well as a request, the one Kubernetes
accepts: it refuses a request without a limit or unequal to it (devices are not shared).
*/}}
{{- define "inat.resources" -}}
{{- $resources := deepCopy (.Values.resources | default dict) -}}
{{- $requests := $resources.requests | default dict -}}
{{- $limits := $resources.limits | default dict -}}
{{- range $name, $request := $requests -}}
{{- if contains "/" $name -}}
{{- if hasKey $limits $name -}}
{{- if ne (int $request) (int (index $limits $name)) -}}
{{- fail (printf "resources: requests.%s (%v) and limits.%s (%v) must be equal: Kubernetes gives a pod whole devices, its request is its limit" $name $request $name (index $limits $name)) -}}
{{- end -}}
{{- else -}}
{{- $_ := set $limits $name $request -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* Node-local disk: the emptyDirs' sizes, which the scheduler does not count itself. */ -}}
{{- $disk := include "inat.bytes" .Values.tmpSize | float64 -}}
{{- if not .Values.data.cache.existingClaim -}}
{{- $disk = addf $disk (include "inat.bytes" .Values.data.cache.sizeLimit | float64) -}}
{{- end -}}
{{- if not (hasKey $requests "ephemeral-storage") -}}
{{- $_ := set $requests "ephemeral-storage" (include "inat.quantity" $disk) -}}
{{- end -}}
{{- with index $limits "ephemeral-storage" -}}
{{- if lt (include "inat.bytes" . | float64) (include "inat.bytes" (index $requests "ephemeral-storage") | float64) -}}
{{- fail (printf "resources.limits.ephemeral-storage (%v) is below the pod's request (%v: tmpSize plus data.cache.sizeLimit unless requests.ephemeral-storage is set): raise it or remove it" . (index $requests "ephemeral-storage")) -}}
{{- end -}}
{{- end -}}
{{- if $requests -}}
{{- $_ := set $resources "requests" $requests -}}
{{- end -}}
{{- if $limits -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toJson $resources -}}
{{- end -}}

{{/*
A quantity (10Gi, 500M, 1.5e3, 2048) in bytes, as a number; the schema has checked its form.
*/}}
{{- define "inat.bytes" -}}
{{- $quantity := toString . -}}
{{- $number := regexFind "^[0-9.]+" $quantity -}}
{{- $suffix := trimPrefix $number $quantity -}}
{{- $units := dict "" 1.0 "m" 0.001 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "Ei" 1152921504606846976.0 -}}
{{- $scale := 1.0 -}}
{{- if regexMatch "^[eE]" $suffix -}}
{{- $exponent := atoi (trimPrefix "+" (substr 1 -1 $suffix)) -}}
{{- range until (int (max $exponent (mul -1 $exponent))) -}}
{{- $scale = ternary (mulf $scale 10) (divf $scale 10) (gt $exponent 0) -}}
{{- end -}}
{{- else -}}
{{- $scale = index $units $suffix -}}
{{- end -}}
{{- mulf (float64 $number) $scale -}}
{{- end -}}

{{/* A number of bytes as a quantity: in Gi or Mi when whole, else in bytes (rounded up). */}}
{{- define "inat.quantity" -}}
{{- $bytes := ceil . | int64 -}}
{{- if eq (mod $bytes 1073741824) 0 -}}
{{- printf "%dGi" (div $bytes 1073741824) -}}
{{- else if eq (mod $bytes 1048576) 0 -}}
{{- printf "%dMi" (div $bytes 1048576) -}}
{{- else -}}
{{- printf "%d" $bytes -}}
{{- end -}}
{{- end -}}

{{/* GPUs of one pod: resources' nvidia.com/gpu limit (or request). */}}
{{- define "inat.gpus" -}}
{{- $resources := .Values.resources | default dict -}}
{{- $limit := index ($resources.limits | default dict) "nvidia.com/gpu" -}}
{{- $request := index ($resources.requests | default dict) "nvidia.com/gpu" -}}
{{- int (default $request $limit | default 0) -}}
{{- end -}}

{{/*
The container's command line, as JSON: `inat sweep` on the job file, for one point of a
sweep ($(JOB_COMPLETION_INDEX)) or, in an adaptive sweep, the workers of one task, under
`inat launch` with one process per GPU when a point's pod has several; inat.overrides last.
*/}}
{{- define "inat.commandLine" -}}
{{- $gpus := include "inat.gpus" . | int -}}
{{- $command := list "inat" -}}
{{- if gt $gpus 1 -}}
{{- $command = list "inat" "launch" "--multi_gpu" "--num_processes" (toString $gpus) -}}
{{- end -}}
{{- $args := list "sweep" -}}
{{- if eq (include "inat.isAdaptive" .) "true" -}}
{{- if gt $gpus 1 -}}
{{- fail (printf "resources: %d GPUs in a pod of an adaptive sweep (method: bayes): its workers train one point each on one GPU; give each pod 1 GPU and set job.sweep.parallelism" $gpus) -}}
{{- end -}}
{{- $args = concat $args (list "--task" "$(JOB_COMPLETION_INDEX)") -}}
{{- else if eq (include "inat.isSweep" .) "true" -}}
{{- $args = concat $args (list "--index" "$(JOB_COMPLETION_INDEX)") -}}
{{- end -}}
{{- /* --index and --task go before the job file: `inat sweep` reads no overrides after an option. */ -}}
{{- $args = append $args "/etc/inat/job.yaml" -}}
{{- $args = concat $args (include "inat.escape" (include "inat.overrides" . | fromJsonArray) | fromJsonArray) -}}
{{- dict "command" $command "args" $args | toJson -}}
{{- end -}}

{{/* The overrides of every point that the chart adds, as JSON: output, cache, data source
and W&B, then `overrides`. */}}
{{- define "inat.overrides" -}}
{{- $output := required "output: set the s3:// URI that run directories go to, e.g. --set output=s3://my-bucket/inat-runs" .Values.output -}}
{{- $overrides := list (printf "output=%s" $output) "data.cache_dir=/cache" -}}
{{- with .Values.data.source -}}
{{- $overrides = append $overrides (printf "data.source=%s" .) -}}
{{- end -}}
{{- if .Values.wandb.enabled -}}
{{- $overrides = append $overrides "logger=wandb" -}}
{{- with .Values.wandb.project -}}
{{- $overrides = append $overrides (printf "logger.wandb.project=%s" .) -}}
{{- end -}}
{{- with .Values.wandb.entity -}}
{{- $overrides = append $overrides (printf "logger.wandb.entity=%s" .) -}}
{{- end -}}
{{- end -}}
{{- concat $overrides (.Values.overrides | default list) | toJson -}}
{{- end -}}

{{/* A list of arguments as JSON, each "$" doubled: Kubernetes expands $(VAR) in args. */}}
{{- define "inat.escape" -}}
{{- $escaped := list -}}
{{- range . -}}
{{- $escaped = append $escaped (replace "$" "$$" .) -}}
{{- end -}}
{{- toJson $escaped -}}
{{- end -}}

{{/*
Literal secrets in values, refused before anything renders. Names are matched in any case
(AWS_SECRET_ACCESS_KEY, aws_secret_access_key); the message names the place and the key,
never the value (a JSON-schema pattern error would print it into the terminal or CI log).
*/}}
{{- define "inat.secretName" -}}
(?i)(secret|password|passwd|token|api_?key|access_?key|credential)
{{- end -}}

{{- define "inat.checkValues" -}}
{{- $secret := include "inat.secretName" . -}}
{{- range $list := list "job.overrides" "overrides" -}}
{{- $overrides := ternary ($.Values.job.overrides | default list) ($.Values.overrides | default list) (eq $list "job.overrides") -}}
{{- range $i, $override := $overrides -}}
{{- $key := regexReplaceAll "=.*" (toString $override) "" -}}
{{- if and (contains "=" (toString $override)) (regexMatch $secret $key) -}}
{{- fail (printf "%s[%d] (%s=...): no literal secrets in overrides: put them in a Secret and pass them with extraEnv valueFrom.secretKeyRef" $list $i $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $i, $volume := .Values.extraVolumes | default list -}}
{{- if has $volume.name (list "job" "tmp" "cache" "shm") -}}
{{- fail (printf "extraVolumes[%d]: the name %s is the chart's own (job, tmp, cache, shm): choose another" $i $volume.name) -}}
{{- end -}}
{{- end -}}
{{- range $i, $mount := .Values.extraVolumeMounts | default list -}}
{{- if has (trimSuffix "/" $mount.mountPath) (list "/etc/inat" "/tmp" "/cache" "/dev/shm") -}}
{{- fail (printf "extraVolumeMounts[%d]: %s is mounted by the chart already" $i $mount.mountPath) -}}
{{- end -}}
{{- end -}}
{{- range $i, $env := .Values.extraEnv | default list -}}
{{- if and (hasKey $env "value") (regexMatch $secret (toString $env.name)) -}}
{{- fail (printf "extraEnv[%d] (%s): no literal secrets in extraEnv: use valueFrom.secretKeyRef" $i $env.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
What every pod of the release has, the training pods and `helm test`'s alike: the identity,
the image pull Secrets, the security context and where it may run.
*/}}
{{- define "inat.podSpec" -}}
enableServiceLinks: false
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
{{- with include "inat.serviceAccountName" . }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.runtimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
{{- with .Values.schedulerName }}
schedulerName: {{ . }}
{{- end }}
{{- with include "inat.imagePullSecrets" . | fromJsonArray }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
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
{{- end -}}

{{/* The inat container's environment: storage, credentials, W&B, then extraEnv. */}}
{{- define "inat.env" -}}
# The root filesystem is read-only: everything that writes goes to /tmp.
- name: HOME
  value: /tmp
- name: PYTHONUNBUFFERED
  value: "1"
{{- with .Values.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with .Values.credentials.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.credentials.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.credentials.secretAccessKeyKey }}
{{- with $.Values.credentials.sessionTokenKey }}
- name: AWS_SESSION_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.credentials.existingSecret }}
      key: {{ . }}
{{- end }}
{{- end }}
{{- if .Values.wandb.enabled }}
- name: WANDB_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "wandb.existingSecret: name the Secret holding the W&B API key" .Values.wandb.existingSecret }}
      key: {{ .Values.wandb.apiKeyKey }}
- name: WANDB_MODE
  value: online
- name: WANDB_DIR
  value: /tmp
{{- with .Values.wandb.baseUrl }}
- name: WANDB_BASE_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Where the inat container mounts the volumes of inat.volumes. */}}
{{- define "inat.volumeMounts" -}}
- name: job
  mountPath: /etc/inat
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /cache
- name: shm
  mountPath: /dev/shm
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pods' volumes: the job file, /tmp, the data cache, /dev/shm, then extraVolumes. */}}
{{- define "inat.volumes" -}}
- name: job
  configMap:
    name: {{ include "inat.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSize }}
- name: cache
  {{- with .Values.data.cache.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ . }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.data.cache.sizeLimit }}
  {{- end }}
- name: shm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .Values.shmSize }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}
