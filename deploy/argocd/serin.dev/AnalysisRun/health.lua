-- ArgoCD health of a serin.dev AnalysisRun: a verdict a person must look at is Suspended.
local hs = {}
local st = obj.status
if st == nil or st.phase == nil or st.phase == "Pending" or st.phase == "Running" then
  hs.status = "Progressing"
  hs.message = (st ~= nil and st.message) or "Measuring"
  return hs
end
if st.phase == "Successful" then
  hs.status = "Healthy"
elseif st.phase == "Inconclusive" then
  hs.status = "Suspended"
else
  hs.status = "Degraded"
end
hs.message = st.message or st.phase
return hs
