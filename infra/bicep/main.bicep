// ChatOps on Azure Container Apps: chatops-ingress (Slack's slash commands, always warm) and
// chatops-runner (0..N replicas scaled on the job queue's length), each with its own
// user-assigned managed identity holding least-privilege roles; the queue, job records and
// audit log in one storage account without shared keys; secrets in Key Vault; logs in Log
// Analytics, metrics and traces in Application Insights. Deploy with
//   az deployment group create -g <group> -f infra/bicep/main.bicep -p infra/bicep/main.bicepparam
// Every parameter is explained in main.bicepparam; the whole story is docs/deploy.md.

targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Prefix of resource names (lower-case letters and digits, 2-10).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'chatops'

@description('Image of chatops-ingress (Dockerfile target `ingress`).')
param ingressImage string

@description('Image of chatops-runner (Dockerfile target `runner`).')
param runnerImage string

@description('Registry server of both images when it needs credentials (an Azure Container Registry: both identities get AcrPull). Empty for public images.')
param registryServer string = ''

@description('Resource id of that Azure Container Registry (needed with registryServer).')
param registryId string = ''

@description('OpenTelemetry Collector (contrib) image of the metrics sidecar.')
param otelCollectorImage string = 'otel/opentelemetry-collector-contrib:0.120.0'

@description('The runbook catalog (TOML), the same for both apps. Local script targets must be absolute paths in the runner image (/app/runbooks/...).')
param catalog string = loadTextContent('catalog.toml')

@description('CHATOPS_QUEUE_NAME: the job queue; its poison queue is <name>-poison.')
param queueName string = 'runbook-jobs'

@description('CHATOPS_RECORDS_CONTAINER: the job-records container.')
param recordsContainerName string = 'chatops-jobs'

@description('CHATOPS_AUDIT_CONTAINER: the audit container.')
param auditContainerName string = 'chatops-audit'

@description('CHATOPS_RECORDS_RETENTION: days job records are kept.')
@minValue(1)
@maxValue(3650)
param recordsRetentionDays int = 30

@description('Days audit blobs are immutable, and then deleted.')
@minValue(1)
@maxValue(146000)
param auditRetentionDays int = 365

@description('Storage replication (zone- or geo-redundant: the queue and the audit log must survive a zone outage).')
@allowed([
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 90

@description('Ingress replicas: at least one is always warm.')
@minValue(1)
param ingressMinReplicas int = 1
@maxValue(30)
param ingressMaxReplicas int = 5

@description('Concurrent requests per ingress replica before another one is added.')
param ingressConcurrentRequests int = 50

@description('Runner replicas when the queue is empty: 0 costs nothing when idle, 1 starts the first job after an idle spell at once.')
@minValue(0)
param runnerMinReplicas int = 0
@minValue(1)
@maxValue(30)
param runnerMaxReplicas int = 10

@description('Queue messages per runner replica (KEDA target) and CHATOPS_RUNNER_CONCURRENCY.')
@minValue(1)
param runnerJobsPerReplica int = 8

@description('CHATOPS_SHUTDOWN_GRACE in seconds: how long jobs in flight may finish after SIGTERM.')
@minValue(1)
@maxValue(570)
param runnerShutdownGraceSeconds int = 120

@description('ARM reads per second the runner replicas may use together in the subscription (ARM refills 25/s per principal; they share one identity). Each replica gets armReadsPerSecond / runnerMaxReplicas.')
@minValue(1)
@maxValue(25)
param armReadsPerSecond int = 20

@description('Resource id of an existing Automation account the runner starts jobs in. Empty: local runbooks only.')
param automationAccountId string = ''

@description('SLACK_TEAM_ID: comma-separated workspace ids whose commands are served; empty: any.')
param slackTeamIds string = ''

@description('SLACK_ENTERPRISE_ID: comma-separated Enterprise Grid ids; empty: any.')
param slackEnterpriseIds string = ''

@description('SLACK_API_BASE_URL: Slack Web API base for the bot token path.')
param slackApiBaseUrl string = 'https://slack.com/api'

@description('CHATOPS_LOG_FORMAT: json for one JSON object per line (Log Analytics parses it).')
param logFormat string = 'json'

@description('RUST_LOG: the services\' log filter. Empty: their default (info, the Azure SDK\'s and OpenTelemetry\'s own lines at warn).')
param logFilter string = ''

@description('Slack app signing secret. Empty: keep the one already in the vault.')
@secure()
param slackSigningSecret string = ''

@description('CHATOPS_JOB_SIGNING_KEY (chatops-runner keygen). Empty: keep the one already in the vault.')
@secure()
param jobSigningKey string = ''

@description('Slack bot token (xoxb-...) for the Web API path. Empty: keep the vault\'s, or none (hasSlackBotToken).')
@secure()
param slackBotToken string = ''

@description('Whether the services get a bot token (true when slackBotToken is given or already in the vault).')
param hasSlackBotToken bool = !empty(slackBotToken)

@description('Slack incoming webhook URL (status after response_url expired). Empty: keep the vault\'s, or none.')
@secure()
param slackWebhookUrl string = ''

@description('Whether the runner gets a webhook URL (true when slackWebhookUrl is given or already in the vault).')
param hasSlackWebhookUrl bool = !empty(slackWebhookUrl)

@description('More environment variables of the ingress, [{ name, value }], for settings without a parameter (README.md, configuration).')
param ingressExtraEnv array = []

@description('More environment variables of the runner, [{ name, value }] (e.g. CHATOPS_VISIBILITY_TIMEOUT, CHATOPS_MAX_JOB_AGE, CHATOPS_SLACK_TAIL_INTERVAL).')
param runnerExtraEnv array = []

@description('Tags on every resource.')
param tags object = {
  app: 'chatops'
}

var suffix = uniqueString(resourceGroup().id)
var storageAccountName = take('${namePrefix}${suffix}', 24)
var vaultName = take('kv-${namePrefix}-${suffix}', 24)
// Split resource ids; an unused one stands in as a well-formed id of this resource group, so that
// the expressions of a module that is not deployed still evaluate.
var placeholderId = '${resourceGroup().id}/providers/none/none/none'
var automationParts = split(empty(automationAccountId) ? placeholderId : automationAccountId, '/')
var registryParts = split(empty(registryId) ? placeholderId : registryId, '/')

resource ingressIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-ingress'
  location: location
  tags: tags
}

resource runnerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-runner'
  location: location
  tags: tags
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    accountName: storageAccountName
    skuName: storageSku
    queueName: queueName
    recordsContainerName: recordsContainerName
    auditContainerName: auditContainerName
    recordsRetentionDays: recordsRetentionDays
    auditRetentionDays: auditRetentionDays
    tags: tags
  }
}

module storageRoles 'modules/storage-roles.bicep' = {
  name: 'storage-roles'
  params: {
    accountName: storage.outputs.accountName
    queueName: storage.outputs.jobsQueueName
    recordsContainerName: storage.outputs.recordsContainerName
    auditContainerName: storage.outputs.auditContainerName
    ingressPrincipalId: ingressIdentity.properties.principalId
    runnerPrincipalId: runnerIdentity.properties.principalId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    location: location
    vaultName: vaultName
    tags: tags
    slackSigningSecret: slackSigningSecret
    jobSigningKey: jobSigningKey
    slackBotToken: slackBotToken
    slackWebhookUrl: slackWebhookUrl
    hasSlackBotToken: hasSlackBotToken
    hasSlackWebhookUrl: hasSlackWebhookUrl
    ingressPrincipalId: ingressIdentity.properties.principalId
    runnerPrincipalId: runnerIdentity.properties.principalId
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    workspaceName: '${namePrefix}-logs'
    appInsightsName: '${namePrefix}-insights'
    retentionDays: logRetentionDays
    tags: tags
  }
}

module environment 'modules/environment.bicep' = {
  name: 'environment'
  params: {
    location: location
    environmentName: '${namePrefix}-env'
    workspaceName: monitoring.outputs.workspaceName
    tags: tags
  }
}

module automationRoles 'modules/automation-roles.bicep' = if (!empty(automationAccountId)) {
  name: 'automation-roles'
  scope: resourceGroup(automationParts[2], automationParts[4])
  params: {
    automationAccountName: last(automationParts)
    runnerPrincipalId: runnerIdentity.properties.principalId
  }
}

module registryPull 'modules/registry-pull.bicep' = if (!empty(registryId)) {
  name: 'registry-pull'
  scope: resourceGroup(registryParts[2], registryParts[4])
  params: {
    registryName: last(registryParts)
    principalIds: [
      ingressIdentity.properties.principalId
      runnerIdentity.properties.principalId
    ]
  }
}

// Settings both services read (README.md's configuration table). The services reach storage
// with their managed identity: endpoints, never a connection string.
var sharedEnv = [
  {
    name: 'AZURE_STORAGE_QUEUE_ENDPOINT'
    value: storage.outputs.queueEndpoint
  }
  {
    name: 'AZURE_STORAGE_BLOB_ENDPOINT'
    value: storage.outputs.blobEndpoint
  }
  {
    name: 'CHATOPS_AZURE_CREDENTIAL'
    value: 'managed-identity'
  }
  {
    name: 'CHATOPS_QUEUE_NAME'
    value: queueName
  }
  {
    name: 'CHATOPS_RECORDS_CONTAINER'
    value: recordsContainerName
  }
  {
    name: 'CHATOPS_RECORDS_RETENTION'
    value: string(recordsRetentionDays)
  }
  {
    name: 'CHATOPS_AUDIT_CONTAINER'
    value: auditContainerName
  }
  {
    // A secret volume of both apps, from the one catalog parameter: both see the same file.
    // Both poll its hash and reload it (catalog reload, issue 9).
    name: 'CHATOPS_CATALOG'
    value: '/etc/chatops/runbooks.toml'
  }
  {
    name: 'SLACK_TEAM_ID'
    value: slackTeamIds
  }
  {
    name: 'SLACK_ENTERPRISE_ID'
    value: slackEnterpriseIds
  }
  {
    // Default defined with the bot-token path (issue 8) in the services' Slack settings.
    name: 'SLACK_API_BASE_URL'
    value: slackApiBaseUrl
  }
  {
    // OTLP/HTTP push of the services' spans to the OpenTelemetry Collector sidecar, which
    // exports to Application Insights (docs/operations.md, OTLP push).
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT'
    value: 'http://127.0.0.1:4318'
  }
  {
    // Metrics reach the sidecar by its scrape of /metrics (which samples the queue depth):
    // pushing them too would count them twice.
    name: 'OTEL_METRICS_EXPORTER'
    value: 'none'
  }
  {
    name: 'CHATOPS_LOG_FORMAT'
    value: logFormat
  }
  {
    name: 'RUST_LOG'
    value: logFilter
  }
]

module ingressApp 'modules/ingress-app.bicep' = {
  name: 'ingress-app'
  params: {
    location: location
    appName: '${namePrefix}-ingress'
    environmentId: environment.outputs.environmentId
    image: ingressImage
    otelCollectorImage: otelCollectorImage
    appInsightsName: monitoring.outputs.appInsightsName
    tags: tags
    identityId: ingressIdentity.id
    identityClientId: ingressIdentity.properties.clientId
    registryServer: registryServer
    minReplicas: ingressMinReplicas
    maxReplicas: ingressMaxReplicas
    concurrentRequests: ingressConcurrentRequests
    sharedEnv: concat(sharedEnv, ingressExtraEnv)
    catalog: catalog
    signingSecretUrl: vault.outputs.signingSecretUrl
    jobKeyUrl: vault.outputs.jobKeyUrl
    botTokenUrl: vault.outputs.botTokenUrl
    hasSlackBotToken: hasSlackBotToken
  }
  dependsOn: [
    storageRoles
    registryPull
  ]
}

module runnerApp 'modules/runner-app.bicep' = {
  name: 'runner-app'
  params: {
    location: location
    appName: '${namePrefix}-runner'
    environmentId: environment.outputs.environmentId
    image: runnerImage
    otelCollectorImage: otelCollectorImage
    appInsightsName: monitoring.outputs.appInsightsName
    tags: tags
    identityId: runnerIdentity.id
    identityClientId: runnerIdentity.properties.clientId
    registryServer: registryServer
    minReplicas: runnerMinReplicas
    maxReplicas: runnerMaxReplicas
    jobsPerReplica: runnerJobsPerReplica
    shutdownGraceSeconds: runnerShutdownGraceSeconds
    storageAccountName: storage.outputs.accountName
    queueName: storage.outputs.jobsQueueName
    sharedEnv: concat(sharedEnv, runnerExtraEnv)
    catalog: catalog
    jobKeyUrl: vault.outputs.jobKeyUrl
    botTokenUrl: vault.outputs.botTokenUrl
    webhookUrl: vault.outputs.webhookUrl
    hasSlackBotToken: hasSlackBotToken
    hasSlackWebhookUrl: hasSlackWebhookUrl
    automationAccountId: automationAccountId
    // Each replica's share (CHATOPS_ARM_READS_PER_SECOND), to the hundredth and rounded down, so
    // that the replicas together stay inside armReadsPerSecond (25 / 30 is at least 0.83).
    armReadsPerSecond: '${armReadsPerSecond * 100 / runnerMaxReplicas / 100}.${padLeft(string(armReadsPerSecond * 100 / runnerMaxReplicas % 100), 2, '0')}'
  }
  dependsOn: [
    storageRoles
    automationRoles
    registryPull
  ]
}

@description('Set this as the slash command\'s Request URL.')
output slashCommandUrl string = 'https://${ingressApp.outputs.fqdn}/slack/commands'

@description('Where the secrets live (az keyvault secret set --vault-name ...).')
output keyVaultName string = vault.outputs.vaultName

output storageAccountName string = storage.outputs.accountName
output ingressPrincipalId string = ingressIdentity.properties.principalId
output runnerPrincipalId string = runnerIdentity.properties.principalId
