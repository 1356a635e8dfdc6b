// The Key Vault of the services' secrets (RBAC mode, purge protection). The apps read them
// through Key Vault references with their own identities, each identity allowed to read only
// the secrets its service uses (role assignments scoped to single secrets).
//
// A secret parameter left empty is not written: the secret then must already be in the vault
// (an earlier deployment, or `az keyvault secret set`, see docs/deploy.md).

param location string
param vaultName string
param tags object

@secure()
param slackSigningSecret string
@secure()
param jobSigningKey string
@secure()
param slackBotToken string
@secure()
param slackWebhookUrl string

@description('Whether the bot token and webhook exist (in this deployment or already in the vault).')
param hasSlackBotToken bool
param hasSlackWebhookUrl bool

param ingressPrincipalId string
param runnerPrincipalId string

var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

// Secret names in the vault (the apps' Key Vault references use them).
var names = {
  signingSecret: 'slack-signing-secret'
  jobKey: 'chatops-job-signing-key'
  botToken: 'slack-bot-token'
  webhook: 'slack-webhook-url'
}

// Public network access stays on: Consumption Container Apps have no fixed egress addresses
// and no private endpoint without a virtual network; access is by Entra ID and RBAC only.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no fixed egress addresses to allow (see above)
  // checkov:skip=CKV_AZURE_189: public endpoint needed by Consumption Container Apps; RBAC only
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enablePurgeProtection: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// No expiry on these secrets: Slack and the services do not rotate on a date, and an expired
// secret cannot be read, which would stop the services. Rotate them as docs/deploy.md says.
resource signingSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackSigningSecret)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the services on that date (see above)
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: names.signingSecret
  properties: {
    value: slackSigningSecret
    contentType: 'text/plain'
  }
}

resource jobKey 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(jobSigningKey)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the services on that date (see above)
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: names.jobKey
  properties: {
    value: jobSigningKey
    contentType: 'text/plain'
  }
}

resource botToken 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackBotToken)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the services on that date (see above)
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: names.botToken
  properties: {
    value: slackBotToken
    contentType: 'text/plain'
  }
}

resource webhook 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackWebhookUrl)) {
  // checkov:skip=CKV_AZURE_41: an expiry would stop the services on that date (see above)
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov does not read the properties of a conditional (if) resource
  parent: vault
  name: names.webhook
  properties: {
    value: slackWebhookUrl
    contentType: 'text/uri-list'
  }
}

// Read access per secret. Secrets written outside this deployment are referenced as existing.
resource signingSecretRef 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: names.signingSecret
}

resource jobKeyRef 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: names.jobKey
}

resource botTokenRef 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: names.botToken
}

resource webhookRef 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: names.webhook
}

// Ingress: the Slack signing secret (verifies commands) and the job key (signs job messages).
resource ingressSigningSecret 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: signingSecretRef
  name: guid(vault.id, names.signingSecret, ingressPrincipalId)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    signingSecret
  ]
}

resource ingressJobKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: jobKeyRef
  name: guid(vault.id, names.jobKey, ingressPrincipalId)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    jobKey
  ]
}

// Runner: the job key (verifies job messages).
resource runnerJobKey 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: jobKeyRef
  name: guid(vault.id, names.jobKey, runnerPrincipalId)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    jobKey
  ]
}

// Both: the bot token (the runner posts and updates job cards; the ingress looks up user groups).
resource ingressBotToken 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasSlackBotToken) {
  scope: botTokenRef
  name: guid(vault.id, names.botToken, ingressPrincipalId)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    botToken
  ]
}

resource runnerBotToken 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasSlackBotToken) {
  scope: botTokenRef
  name: guid(vault.id, names.botToken, runnerPrincipalId)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    botToken
  ]
}

// Runner: the incoming webhook (status after a response_url expired).
resource runnerWebhook 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasSlackWebhookUrl) {
  scope: webhookRef
  name: guid(vault.id, names.webhook, runnerPrincipalId)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
  dependsOn: [
    webhook
  ]
}

// Versionless secret URLs: the apps follow the newest version (see docs/deploy.md, rotation).
output signingSecretUrl string = '${vault.properties.vaultUri}secrets/${names.signingSecret}'
output jobKeyUrl string = '${vault.properties.vaultUri}secrets/${names.jobKey}'
output botTokenUrl string = '${vault.properties.vaultUri}secrets/${names.botToken}'
output webhookUrl string = '${vault.properties.vaultUri}secrets/${names.webhook}'
output vaultName string = vault.name
