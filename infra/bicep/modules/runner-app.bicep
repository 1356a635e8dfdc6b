// chatops-runner: no ingress; 0..N replicas scaled by KEDA's azureQueue rule on the jobs queue's
// length, the scaler authenticated with the runner's own managed identity. Probes on /healthz
// and /readyz (port 3001). The termination grace is CHATOPS_SHUTDOWN_GRACE plus a margin, so
// jobs in flight get all of their grace before the replica is killed (docs/deploy.md, scale-in).

param location string
param appName string
param environmentId string
param image string
param otelCollectorImage string
param appInsightsName string
param tags object

param identityId string
param identityClientId string
param registryServer string

@description('0: no cost when idle, the first job after an idle spell waits for KEDA (about 30 s) and a replica start. 1: always one warm.')
@minValue(0)
param minReplicas int
param maxReplicas int

@description('Messages on the queue per replica (the scale target); CHATOPS_RUNNER_CONCURRENCY is the same number.')
@minValue(1)
param jobsPerReplica int

@description('CHATOPS_SHUTDOWN_GRACE in seconds.')
@minValue(1)
@maxValue(570)
param shutdownGraceSeconds int

param storageAccountName string
param queueName string

param sharedEnv array
param catalog string

param jobKeyUrl string
param botTokenUrl string
param webhookUrl string
param hasSlackBotToken bool
param hasSlackWebhookUrl bool

@description('Automation account resource id (empty: local runbooks only).')
param automationAccountId string

@description('CHATOPS_ARM_READS_PER_SECOND: this replica\'s share of the ARM read budget.')
param armReadsPerSecond string

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Automation/automationAccounts/<name>
var automation = split(empty(automationAccountId) ? '/s/none/g/none/p/a/a/none' : automationAccountId, '/')
var automationEnv = empty(automationAccountId) ? [] : [
      {
        name: 'AZURE_SUBSCRIPTION_ID'
        value: automation[2]
      }
      {
        name: 'AUTOMATION_RESOURCE_GROUP'
        value: automation[4]
      }
      {
        name: 'AUTOMATION_ACCOUNT'
        value: automation[8]
      }
    ]

// Key Vault references (read with the app's identity) and the variables they feed.
var requiredSecrets = [
  {
    name: 'job-signing-key'
    keyVaultUrl: jobKeyUrl
    identity: identityId
  }
]
var botTokenSecrets = hasSlackBotToken ? [
  {
    name: 'slack-bot-token'
    keyVaultUrl: botTokenUrl
    identity: identityId
  }
] : []
var webhookSecrets = hasSlackWebhookUrl ? [
  {
    name: 'slack-webhook-url'
    keyVaultUrl: webhookUrl
    identity: identityId
  }
] : []
var kvSecrets = concat(requiredSecrets, botTokenSecrets, webhookSecrets)

var requiredSecretEnv = [
  {
    name: 'CHATOPS_JOB_SIGNING_KEY'
    secretRef: 'job-signing-key'
  }
]
var botTokenEnv = hasSlackBotToken ? [
  {
    name: 'SLACK_BOT_TOKEN'
    secretRef: 'slack-bot-token'
  }
] : []
var webhookEnv = hasSlackWebhookUrl ? [
  {
    name: 'SLACK_WEBHOOK_URL'
    secretRef: 'slack-webhook-url'
  }
] : []
var secretEnv = concat(requiredSecretEnv, botTokenEnv, webhookEnv)

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    configuration: {
      activeRevisionsMode: 'Single'
      registries: empty(registryServer) ? [] : [
            {
              server: registryServer
              identity: identityId
            }
          ]
      secrets: concat(kvSecrets, [
        {
          name: 'catalog'
          value: catalog
        }
        {
          name: 'otel-collector-config'
          value: loadTextContent('../otel-collector.yaml')
        }
        {
          name: 'appinsights-connection-string'
          value: appInsights.properties.ConnectionString
        }
      ])
    }
    template: {
      terminationGracePeriodSeconds: shutdownGraceSeconds + 30
      containers: [
        {
          name: 'runner'
          image: image
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: concat(sharedEnv, secretEnv, automationEnv, [
            {
              name: 'CHATOPS_RUNNER_ADDR'
              value: '0.0.0.0:3001'
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
            {
              name: 'CHATOPS_RUNNER_CONCURRENCY'
              value: string(jobsPerReplica)
            }
            {
              name: 'CHATOPS_SHUTDOWN_GRACE'
              value: '${shutdownGraceSeconds}s'
            }
            {
              // The subscription's read budget divided by the replicas (main.bicep).
              name: 'CHATOPS_ARM_READS_PER_SECOND'
              value: armReadsPerSecond
            }
          ])
          volumeMounts: [
            {
              volumeName: 'catalog'
              mountPath: '/etc/chatops'
            }
          ]
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: 3001
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: 3001
              }
              periodSeconds: 5
              failureThreshold: 3
            }
          ]
        }
        {
          name: 'otel-collector'
          image: otelCollectorImage
          resources: {
            cpu: json('0.25')
            memory: '0.5Gi'
          }
          env: [
            {
              name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
              secretRef: 'appinsights-connection-string'
            }
            {
              // The service's Prometheus page, scraped by the collector (otel-collector.yaml).
              name: 'CHATOPS_METRICS_TARGET'
              value: '127.0.0.1:3001'
            }
          ]
          volumeMounts: [
            {
              volumeName: 'otel-collector-config'
              mountPath: '/etc/otelcol-contrib'
            }
          ]
        }
      ]
      volumes: [
        {
          name: 'catalog'
          storageType: 'Secret'
          secrets: [
            {
              secretRef: 'catalog'
              path: 'runbooks.toml'
            }
          ]
        }
        {
          name: 'otel-collector-config'
          storageType: 'Secret'
          secrets: [
            {
              secretRef: 'otel-collector-config'
              path: 'config.yaml'
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            // KEDA's default strategy reads the queue's approximate message count, which includes
            // the messages runners hold invisible while their jobs run: jobs in flight keep
            // the count above zero, so the app is not scaled to zero under it.
            name: 'queue-length'
            azureQueue: {
              accountName: storageAccountName
              queueName: queueName
              queueLength: jobsPerReplica
              identity: identityId
            }
          }
        ]
      }
    }
  }
}

output name string = app.name
