// The storage account of the job queue, its poison queue, the job-records container and the
// audit container. No shared-key access (every service uses its managed identity), TLS 1.2, no
// public blob access. The services never create these: they only use them.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lower-case letters and digits, globally unique).')
param accountName string

@description('Replication of the account.')
param skuName string

@description('The job queue; its poison queue is <name>-poison.')
param queueName string

@description('The job-records container.')
param recordsContainerName string

@description('The audit container.')
param auditContainerName string

@description('Days job records are kept (lifecycle rule).')
param recordsRetentionDays int

@description('Days audit blobs are immutable, then deleted by the lifecycle rule.')
param auditRetentionDays int

param tags object

// Public network access stays on: a Consumption Container Apps environment without a virtual
// network has no fixed outbound addresses to allow, and access is by Entra ID only.
resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_43: the name is namePrefix (2-10 lower-case letters and digits) + uniqueString (13), computed in main.bicep; checkov cannot resolve it
  // checkov:skip=CKV_AZURE_206: skuName is a parameter whose allowed values are all zone- or geo-replicated; checkov cannot resolve it
  // checkov:skip=CKV_AZURE_35: no fixed egress addresses to allow (see above); shared keys are off
  // checkov:skip=CKV_AZURE_59: public endpoint needed by Consumption Container Apps; Entra ID only
  name: accountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource jobsQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${queueName}-poison'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource recordsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: recordsContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource auditContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: auditContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Time-based retention with protected append writes: written blocks cannot be changed or
// deleted for auditRetentionDays, blobs can still grow by appends. Lock it after the first
// deployment (docs/deploy.md); an unlocked policy can still be shortened or removed.
resource auditImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  parent: auditContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: true
  }
}

// Nobody has delete rights on either container: these rules delete. Records are deleted
// recordsRetentionDays after their last write (CHATOPS_RECORDS_RETENTION is the same number);
// audit blobs once their immutability period is over.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-job-records'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              // appendBlob: a local script's whole output, kept next to its record.
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${recordsContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: recordsRetentionDays
                }
              }
            }
          }
        }
        {
          name: 'delete-audit-after-retention'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'appendBlob'
              ]
              prefixMatch: [
                '${auditContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: auditRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    recordsContainer
    auditImmutability
  ]
}

output accountName string = account.name
output accountId string = account.id
output queueEndpoint string = account.properties.primaryEndpoints.queue
output blobEndpoint string = account.properties.primaryEndpoints.blob
output jobsQueueName string = jobsQueue.name
output poisonQueueName string = poisonQueue.name
output recordsContainerName string = recordsContainer.name
output auditContainerName string = auditContainer.name
