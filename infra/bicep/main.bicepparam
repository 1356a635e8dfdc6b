// Parameters of main.bicep, each explained. Deploy with
//   az deployment group create -g <group> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
// Secrets are read from the environment of the shell that deploys (never written in this file);
// see docs/deploy.md for the whole procedure.
using 'main.bicep'

// Azure region of every resource; default: the resource group's. Not set here.
// (location)

// Prefix of every resource name (2-10 lower-case letters and digits): <prefix>-ingress, ...
param namePrefix = 'chatops'

// The two images, built from this repository's Dockerfile (targets `ingress` and `runner`) and
// pushed to your registry: CI does not build them.
param ingressImage = readEnvironmentVariable('CHATOPS_INGRESS_IMAGE', 'myregistry.azurecr.io/chatops-ingress:0.1.0')
// The runner image (target `runner`): the runner as root, its local scripts as user chatops
// (CHATOPS_SCRIPT_USER, set in the image), with /bin/sh for them.
param runnerImage = readEnvironmentVariable('CHATOPS_RUNNER_IMAGE', 'myregistry.azurecr.io/chatops-runner:0.1.0')

// Registry server of the images when pulling needs credentials (an Azure Container Registry,
// pulled with the apps' managed identities); empty for public images.
param registryServer = readEnvironmentVariable('CHATOPS_REGISTRY_SERVER', '')
// Resource id of that registry: both identities get AcrPull on it (nothing else).
param registryId = readEnvironmentVariable('CHATOPS_REGISTRY_ID', '')

// The OpenTelemetry Collector (contrib) sidecar that receives the services' OTLP push on
// loopback and exports metrics and traces to Application Insights.
param otelCollectorImage = 'otel/opentelemetry-collector-contrib:0.120.0'

// The runbook catalog, the same file for both apps: by default main.bicep reads
// infra/bicep/catalog.toml (edit that file). Local script targets must be absolute paths in the
// runner image. Not set here.
// (catalog)

// CHATOPS_QUEUE_NAME: the job queue the template creates, with <name>-poison.
param queueName = 'runbook-jobs'

// CHATOPS_RECORDS_CONTAINER: one JSON blob per job (docs/records.md).
param recordsContainerName = 'chatops-jobs'

// CHATOPS_AUDIT_CONTAINER: the append-only audit log (docs/audit.md), immutable.
param auditContainerName = 'chatops-audit'

// CHATOPS_RECORDS_RETENTION: days job records are kept (lifecycle rule and lookups).
param recordsRetentionDays = 30

// Days audit blobs cannot be changed or deleted (time-based retention), then deleted.
param auditRetentionDays = 365

// Storage replication: ZRS survives a zone outage; GZRS/RAGZRS also a region's.
param storageSku = 'Standard_ZRS'

// Days Log Analytics keeps the apps' logs (30-730).
param logRetentionDays = 90

// Ingress replicas: never below 1 (Slack's 3 s leave no room for a cold start).
param ingressMinReplicas = 1
// Ingress replicas at most.
param ingressMaxReplicas = 5

// Concurrent HTTP requests per ingress replica before another one is added.
param ingressConcurrentRequests = 50

// Runner replicas with an empty queue: 0 costs nothing when idle, but the first job after an
// idle spell waits for KEDA's poll (about 30 s) and a replica start; 1 starts it at once.
param runnerMinReplicas = 0
// Runner replicas at most (also divides armReadsPerSecond).
param runnerMaxReplicas = 10

// Messages on the queue per runner replica (KEDA's target) and CHATOPS_RUNNER_CONCURRENCY.
param runnerJobsPerReplica = 8

// CHATOPS_SHUTDOWN_GRACE in seconds; the replica's termination grace is this plus 30 s.
param runnerShutdownGraceSeconds = 120

// ARM reads per second the runner replicas may use together (ARM refills 25/s per principal);
// each replica gets armReadsPerSecond / runnerMaxReplicas (CHATOPS_ARM_READS_PER_SECOND, at
// least 0.01) and slows down further when ARM says the budget runs low.
param armReadsPerSecond = 20

// Resource id of an existing Automation account (any resource group of the subscription):
// /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Automation/automationAccounts/<name>
// Empty: local runbooks only. The runner gets Automation Job Operator and Runbook Operator there.
param automationAccountId = readEnvironmentVariable('CHATOPS_AUTOMATION_ACCOUNT_ID', '')

// SLACK_TEAM_ID: your workspace id(s) (T...), comma-separated; empty serves any workspace.
param slackTeamIds = readEnvironmentVariable('SLACK_TEAM_ID', '')

// SLACK_ENTERPRISE_ID: Enterprise Grid id(s) (E...); empty: any.
param slackEnterpriseIds = ''

// SLACK_API_BASE_URL: Slack's Web API, for the bot-token path.
param slackApiBaseUrl = 'https://slack.com/api'

// CHATOPS_LOG_FORMAT: json, one object per line, which Log Analytics parses into columns.
param logFormat = 'json'

// RUST_LOG: the log filter; empty for the services' default (README.md).
param logFilter = ''

// The Slack app's signing secret (Basic Information > App Credentials). Empty keeps the one in
// the vault; required on the first deployment.
param slackSigningSecret = readEnvironmentVariable('SLACK_SIGNING_SECRET', '')

// CHATOPS_JOB_SIGNING_KEY: `chatops-runner keygen` (or `openssl rand -base64 32`). Empty keeps
// the vault's; required on the first deployment.
param jobSigningKey = readEnvironmentVariable('CHATOPS_JOB_SIGNING_KEY', '')

// SLACK_BOT_TOKEN (xoxb-...): one job card per job, updated in place; optional.
param slackBotToken = readEnvironmentVariable('SLACK_BOT_TOKEN', '')
// Whether the apps get the bot token: true when one is given now or is already in the vault.
param hasSlackBotToken = !empty(readEnvironmentVariable('SLACK_BOT_TOKEN', '')) || readEnvironmentVariable('CHATOPS_HAS_SLACK_BOT_TOKEN', '') == 'true'

// SLACK_WEBHOOK_URL: incoming webhook for status after a response_url expired; optional.
param slackWebhookUrl = readEnvironmentVariable('SLACK_WEBHOOK_URL', '')
// Whether the runner gets the webhook: true when one is given now or is already in the vault.
param hasSlackWebhookUrl = !empty(readEnvironmentVariable('SLACK_WEBHOOK_URL', '')) || readEnvironmentVariable('CHATOPS_HAS_SLACK_WEBHOOK_URL', '') == 'true'

// More settings of either app, for variables without a parameter here (README.md's
// configuration table), e.g. [{ name: 'CHATOPS_MAX_CONNECTIONS', value: '2048' }].
param ingressExtraEnv = []
// Same for the runner (e.g. CHATOPS_VISIBILITY_TIMEOUT, CHATOPS_AUTOMATION_POLL_INTERVAL).
param runnerExtraEnv = []

// Tags on every resource.
param tags = {
  app: 'chatops'
}
