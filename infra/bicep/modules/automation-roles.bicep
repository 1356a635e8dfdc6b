// The runner's roles on an existing Automation account (deployed at the account's resource
// group): Automation Job Operator (create, read and stop jobs, read their streams) and
// Automation Runbook Operator (read runbooks, which creating a job of one needs). Together they
// are what starting and following a job needs; neither can change runbooks or the account.

param automationAccountName string
param runnerPrincipalId string

var automationJobOperator = '4fe576fe-1146-4730-92eb-48519fa6bf9f'
var automationRunbookOperator = '5fb5aef8-1081-4b8e-bb16-9d5d0385bab5'

resource account 'Microsoft.Automation/automationAccounts@2023-11-01' existing = {
  name: automationAccountName
}

resource jobOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, runnerPrincipalId, automationJobOperator)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', automationJobOperator)
  }
}

resource runbookOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: account
  name: guid(account.id, runnerPrincipalId, automationRunbookOperator)
  properties: {
    principalId: runnerPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', automationRunbookOperator)
  }
}
