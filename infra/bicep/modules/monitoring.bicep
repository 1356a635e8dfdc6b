// Where logs and metrics go: a Log Analytics workspace (the apps' console logs, through the
// Container Apps environment) and a workspace-based Application Insights (metrics and traces the
// services push over OTLP to their OpenTelemetry Collector sidecar, which exports them here).

param location string
param workspaceName string
param appInsightsName string
param retentionDays int
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'other'
  properties: {
    Application_Type: 'other'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
  }
}

output workspaceId string = workspace.id
output workspaceCustomerId string = workspace.properties.customerId
output workspaceName string = workspace.name
output appInsightsName string = appInsights.name
