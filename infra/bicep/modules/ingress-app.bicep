// chatops-ingress: external HTTPS ingress for Slack's slash commands, always at least one warm
// replica (Slack waits 3 s; a cold start can take longer), more on HTTP load. Probes on /healthz
// and /readyz (Container Apps ignores the image's HEALTHCHECK). An OpenTelemetry Collector
// sidecar receives the service's OTLP push on loopback and exports it to Application Insights.

param location string
param appName string
param environmentId string
param image string
param otelCollectorImage string
param appInsightsName string
param tags object

@description('Resource id and client id of the ingress\'s user-assigned identity.')
param identityId string
param identityClientId string

@description('Registry server of the images (empty: public images, no credentials).')
param registryServer string

@minValue(1)
param minReplicas int
param maxReplicas int

@description('Concurrent HTTP requests per replica before another replica is added.')
param concurrentRequests int

@description('Environment variables shared with the runner (storage, catalog, workspaces, logs).')
param sharedEnv array

@description('The catalog (runbooks.toml), mounted at /etc/chatops/runbooks.toml.')
param catalog string

param signingSecretUrl string
param jobKeyUrl string
param botTokenUrl string
param hasSlackBotToken bool

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// Key Vault references (read with the app's identity) and the variables they feed.
var requiredSecrets = [
  {
    name: 'slack-signing-secret'
    keyVaultUrl: signingSecretUrl
    identity: identityId
  }
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
var kvSecrets = concat(requiredSecrets, botTokenSecrets)

var requiredSecretEnv = [
  {
    name: 'SLACK_SIGNING_SECRET'
    secretRef: 'slack-signing-secret'
  }
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
var secretEnv = concat(requiredSecretEnv, botTokenEnv)

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
      ingress: {
        external: true
        targetPort: 3000
        transport: 'auto'
        allowInsecure: false
      }
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
      terminationGracePeriodSeconds: 30
      containers: [
        {
          name: 'ingress'
          image: image
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          env: concat(sharedEnv, secretEnv, [
            {
              name: 'CHATOPS_INGRESS_ADDR'
              value: '0.0.0.0:3000'
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
            {
              // Prometheus text on loopback only: the collector sidecar scrapes it and sends it
              // to Azure Monitor (Container Apps itself does not scrape Prometheus).
              name: 'CHATOPS_METRICS_ADDR'
              value: '127.0.0.1:9090'
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
                port: 3000
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/readyz'
                port: 3000
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
              value: '127.0.0.1:9090'
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
            name: 'http-load'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequests)
              }
            }
          }
        ]
      }
    }
  }
}

output fqdn string = app.properties.configuration.ingress.fqdn
output name string = app.name
