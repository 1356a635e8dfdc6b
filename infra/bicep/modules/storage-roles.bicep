// Data-plane roles of the two identities, each scoped to the one queue or container it needs
// (the narrowest scope Azure allows for Storage data roles), and the custom role that lets the
// ingress add to the audit log without reading, changing or deleting it.

param accountName string
param queueName string
param recordsContainerName string
param auditContainerName string

@description('Principal (object) id of the ingress identity.')
param ingressPrincipalId string

@description('Principal (object) id of the runner identity.')
param runnerPrincipalId string

// Built-in role definition ids (the same in every tenant).
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource jobsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: queueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: '${queueName}-poison'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource recordsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: recordsContainerName
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: auditContainerName
}

// Creating this needs Microsoft.Authorization/roleDefinitions/write on the resource group
// (Owner or User Access Administrator): see docs/deploy.md.
resource auditAppender 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'chatops-audit-appender')
  properties: {
    // Role names are unique in the tenant: the group's name and a hash of its id tell them apart.
    roleName: 'ChatOps audit appender (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
    description: 'Create new blobs and append to them; no read, overwrite or delete.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
        ]
        notDataActions: []
      }
    ]
  }
}

// Ingress: put job messages on the jobs queue (no read, no delete).
resource ingressSendsJobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: jobsQueue
  name: guid(jobsQueue.id, ingressPrincipalId, storageQueueDataMessageSender)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
  }
}

// Ingress: read job records for status, stop, rerun and history.
resource ingressReadsRecords 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: recordsContainer
  name: guid(recordsContainer.id, ingressPrincipalId, storageBlobDataReader)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
  }
}

// Ingress: add audit lines, never read or change them.
resource ingressAppendsAudit 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: auditContainer
  name: guid(auditContainer.id, ingressPrincipalId, auditAppender.name)
  properties: {
    principalId: ingressPrincipalId
    principalType: 'ServicePrincipal'
    // Role definitions are subscription-level objects, whatever their assignable scope.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditAppender.name)
  }
  dependsOn: [
    auditAppender
  ]
}

// Runner: take, extend (update) and delete job messages; Message Processor cannot update a
// message's visibility nor write the poison queue, so Contributor, on these two queues only.
resource runnerJobsQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: jobsQueue
  name: guid(jobsQueue.id, runnerPrincipalId, storageQueueDataContributor)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

resource runnerPoisonQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: poisonQueue
  name: guid(poisonQueue.id, runnerPrincipalId, storageQueueDataContributor)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// Runner: write job records (conditional writes, heartbeats) and read them.
resource runnerRecords 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: recordsContainer
  name: guid(recordsContainer.id, runnerPrincipalId, storageBlobDataContributor)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}

// Runner: append its audit lines, read its blob's end after a lost answer, audit verify/export.
// The immutability policy keeps written blocks from being changed or deleted all the same.
resource runnerAudit 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: auditContainer
  name: guid(auditContainer.id, runnerPrincipalId, storageBlobDataContributor)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
  }
}
