-- Argo CD health of a HyperSpector MonitoredServer (hyperspector.io/MonitoredServer).
-- Runs as an argocd-cm resource customization: Lua 5.1 (gopher-lua) with only the base, table and
-- package libraries, the object in the global `obj`.
--   Healthy      Ready=True (the IDS VM monitors the server VM)
--   Progressing  no status yet, status.observedGeneration behind metadata.generation, or converging
--   Degraded     a condition the user must fix (the operator's Warning reasons), with its message
--   Suspended    the server VM is paused (e.g. by spec.response.onAlert: Pause) or stopped
local hs = {}

-- Condition reasons that need the user (src/controllers/monitoredserver/reasons.ts WARNING_REASONS;
-- a test keeps the two lists equal). Whatever the condition's status, such a reason is a problem.
local degradedReasons = {
  ServerVMNotFound = true,
  ServerVMAlreadyMonitored = true,
  ServerVMNameConflict = true,
  ServerVMInvalid = true,
  IDSVMNameConflict = true,
  IDSVMInvalid = true,
  IDSVMUnschedulable = true,
  ProcessMapperFailing = true,
  RestartRequired = true,
  MirroringUnavailable = true,
  DiskInspectionUnavailable = true,
  DiskVolumeNotFound = true,
  DiskVolumeUnsupported = true,
  DiskClaimNotFound = true,
  DiskClaimReadWriteOncePod = true,
  HotplugUnavailable = true,
  HotplugRefused = true,
  IDSCloudInitUnmergeable = true,
  SnapshotNotReady = true,
  SnapshotAPIUnavailable = true,
  ResponseUnavailable = true,
  EvacuationMigrationFailed = true,
  IDSNetworkFull = true,
  IDSNetworkMisconfigured = true,
  IDSNetworkDataUnmergeable = true,
  NetworkAttachmentRefused = true,
  ServerNICNotMirrorable = true,
  MirrorBridgeFull = true,
}

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted: the operator is tearing down the IDS VM"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local conditions = {}
for _, condition in ipairs(status.conditions) do
  if condition.type ~= nil then
    conditions[condition.type] = condition
  end
end

if status.serverVM ~= nil and status.serverVM.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Server VM " .. status.serverVM.name .. " is paused; unpause it (virtctl unpause vm " .. status.serverVM.name .. ") to resume it"
  return hs
end

-- The first problem in the operator's order of conditions (Ready repeats the first one's reason).
for _, condition in ipairs(status.conditions) do
  if condition.type ~= "Ready" and degradedReasons[condition.reason] then
    hs.status = "Degraded"
    hs.message = condition.type .. ": " .. condition.message
    return hs
  end
end

local serverRunning = conditions["ServerRunning"]
if serverRunning ~= nil and serverRunning.status ~= "True" and serverRunning.reason == "ServerVMStopped" then
  hs.status = "Suspended"
  hs.message = "ServerRunning: " .. serverRunning.message
  return hs
end

local ready = conditions["Ready"]
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end
hs.status = "Progressing"
hs.message = ready.message
return hs
