-- ArgoCD health of a serin.dev Rollout, from the phase and message the controller writes.
local hs = {}
local st = obj.status
if st == nil or st.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Serin controller to look at the Rollout"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and st.observedGeneration ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Serin controller to see the latest spec"
  return hs
end
if st.phase == "Healthy" then
  hs.status = "Healthy"
elseif st.phase == "Paused" then
  hs.status = "Suspended"
elseif st.phase == "Degraded" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = st.message or ""
return hs
